"""Evaluation of (possibly randomized) classifiers under named threat models, every example answered by R fresh
draws: ``evaluate`` (``evaluate``), the threat models (``threats``), answers and submissions (``answers``) and the
gradient-masking flags on every result (``flags``)."""

from ..protocols import ANSWER_MODES, PROTOCOLS, parse_protocols
from .answers import Batch, attack_checked, craft
from .evaluate import evaluate, score_examples, trials
from .flags import flags

__all__ = ["ANSWER_MODES", "PROTOCOLS", "Batch", "attack_checked", "craft", "evaluate", "flags", "parse_protocols",
           "score_examples", "trials"]
