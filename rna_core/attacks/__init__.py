"""Adversarial attacks, each declared once in its loop's file (``registry``) and written once against the
``Oracle`` (a model through the Backend's primitives) and ``Ops``.

``run(oracle, x, y, spec, rng)`` runs the registered loop of ``spec.name``; every random number (starts, targets,
Square's squares) comes from ``rng``, the core's numpy Generator, so an attack is reproducible and identical on
every backend. Modules: ``registry`` (attack kinds, the grammar, ``parse_attack``), ``specs`` (AttackSpec),
``schedules`` (random starts, targets, APGD checkpoints, Square's window sizes), ``oracle`` (the model as the loops
see it), ``common`` (projection, EOT averages), ``loops`` (the attacks: ``pgd`` (FGSM, PGD, MIFGSM), ``cw``,
``deepfool``, ``apgd`` (APGD-CE/DLR/T), ``square``), ``suites`` (AutoAttack, the papers' columns), ``dispatch``;
the losses are ``rna_core.losses``.
"""

from ..losses import CE, CE_MEAN, DLR, DLR_TARGETED, LOGITS, Loss
from ..ops import Ops
from .dispatch import attack, run
from .loops.apgd import apgd, apgd_t
from .loops.cw import cw
from .loops.deepfool import deepfool
from .loops.pgd import fgsm, mifgsm, pgd
from .loops.square import square
from .oracle import Oracle
from .registry import KINDS, WORDS, AttackKind, Word, grammar_help, kind_of, names, parse_attack, register_attack
from .schedules import apgd_checkpoints, random_start, random_targets, square_size
from .specs import NORMS, AttackSpec
from .suites import autoattack, autoattack_rand, paper_suite

__all__ = ["CE", "CE_MEAN", "DLR", "DLR_TARGETED", "KINDS", "LOGITS", "NORMS", "WORDS", "AttackKind", "AttackSpec",
           "Loss", "Ops", "Oracle", "Word", "apgd", "apgd_checkpoints", "apgd_t", "attack", "autoattack",
           "autoattack_rand", "cw", "deepfool", "fgsm", "grammar_help", "kind_of", "mifgsm", "names", "paper_suite",
           "parse_attack", "pgd", "random_start", "random_targets", "register_attack", "run", "square", "square_size"]
