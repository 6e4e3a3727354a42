"""rna-core: randomized and adversarial defenses of image classifiers (RNA, CTRW, APART).

The core is numpy only; ``import rna_core`` never imports torch or mindspore. A framework loads when a
backend is asked for: ``rna_core.train(backend="torch")`` or ``rna_core.get_backend("torch")``.
"""

from .adversarial import attack
from .attacks import (
                      AttackSpec,
                      apgd,
                      apgd_t,
                      autoattack,
                      autoattack_rand,
                      cw,
                      deepfool,
                      fgsm,
                      mifgsm,
                      paper_suite,
                      parse_attack,
                      pgd,
                      square,
)
from .backend import Backend, SGDConfig
from .classifier import Classifier, build_classifier, create_model, load_classifier
from .controller import Draw, DrawController
from .evaluation import evaluate, score_examples
from .norms import NormSpec, parse_norms
from .paths import PathSpace
from .recipes import RECIPES, Recipe, get_recipe
from .registry import available_backends, get_backend
from .runs import evaluate_checkpoint, load_run
from .training import TrainResult, train

__version__ = "0.1.0"

__all__ = ["RECIPES", "AttackSpec", "Backend", "Classifier", "Draw", "DrawController", "NormSpec", "PathSpace",
           "Recipe", "SGDConfig", "TrainResult", "apgd", "apgd_t", "attack", "autoattack", "autoattack_rand",
           "available_backends", "build_classifier", "create_model", "cw", "deepfool", "evaluate",
           "evaluate_checkpoint", "fgsm", "get_backend", "get_recipe", "load_classifier", "load_run", "mifgsm",
           "paper_suite", "parse_attack", "parse_norms", "pgd", "score_examples", "square", "train"]
