"""Adversarial attacks, each loop written once against the ``Oracle`` (a model through the Backend's primitives)
and ``Ops``.

``run(oracle, x, y, spec, rng)`` dispatches by the table ``ATTACKS``; every random number (starts, targets,
Square's squares) comes from ``rng``, the core's numpy Generator, so an attack is reproducible and identical on
every backend. Modules: ``specs`` (AttackSpec, the papers' settings, the attack grammar), ``schedules`` (random
starts, targets, APGD checkpoints, Square's window sizes), ``oracle`` (the model as the loops see it), ``common``
(projection, EOT averages), ``loops`` (the nine loops), ``dispatch``; the losses are ``rna_core.losses``.
"""

from ..losses import CE, CE_MEAN, DLR, DLR_TARGETED, LOGITS, Loss
from ..ops import Ops
from .dispatch import ATTACKS, attack, run
from .oracle import Oracle
from .schedules import apgd_checkpoints, random_start, random_targets, square_size
from .specs import (
    GRADIENT_FREE,
    MIN_NORM,
    NAMES,
    NORMS,
    TARGETABLE,
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

__all__ = ["ATTACKS", "CE", "CE_MEAN", "DLR", "DLR_TARGETED", "GRADIENT_FREE", "LOGITS", "MIN_NORM", "NAMES", "NORMS",
           "TARGETABLE", "AttackSpec", "Loss", "Ops", "Oracle", "apgd", "apgd_checkpoints", "apgd_t", "attack",
           "autoattack", "autoattack_rand", "cw", "deepfool", "fgsm", "mifgsm", "paper_suite", "parse_attack", "pgd",
           "random_start", "random_targets", "run", "square", "square_size"]
