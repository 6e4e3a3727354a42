"""The attack table: name -> loop, with the random numbers each loop draws before it starts, and restarts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..ops import T
from .common import eot_logits, where_rows
from .loops import apgd, cw, deepfool, pgd, square
from .oracle import Oracle
from .schedules import random_start, random_targets
from .specs import NAMES, AttackSpec

Attack = Callable[[Oracle, T, T, AttackSpec, np.random.Generator], T]


def _targets(oracle: Oracle, y: T, spec: AttackSpec, rng: np.random.Generator) -> T | None:
    if not spec.targeted:
        return None
    return oracle.ops.tensor(random_targets(oracle.ops.numpy(y), oracle.num_classes, rng))


def _fgsm(oracle: Oracle, x: T, y: T, spec: AttackSpec, rng: np.random.Generator) -> T:
    return pgd.fgsm(oracle, x, y, spec, _targets(oracle, y, spec, rng))


def _pgd(oracle: Oracle, x: T, y: T, spec: AttackSpec, rng: np.random.Generator) -> T:
    target = _targets(oracle, y, spec, rng)
    start = oracle.ops.tensor(random_start(spec, tuple(x.shape), rng))
    return pgd.pgd_from(oracle, x, y, spec, start, target)


def _mifgsm(oracle: Oracle, x: T, y: T, spec: AttackSpec, rng: np.random.Generator) -> T:
    return pgd.mifgsm(oracle, x, y, spec, _targets(oracle, y, spec, rng))


def _cw(oracle: Oracle, x: T, y: T, spec: AttackSpec, rng: np.random.Generator) -> T:
    return cw.cw(oracle, x, y, spec)


def _deepfool(oracle: Oracle, x: T, y: T, spec: AttackSpec, rng: np.random.Generator) -> T:
    return deepfool.deepfool(oracle, x, y, spec)


ATTACKS: dict[str, Attack] = {
    "fgsm": _fgsm,
    "pgd": _pgd,
    "mifgsm": _mifgsm,
    "cw": _cw,
    "deepfool": _deepfool,
    "apgd-ce": apgd.apgd,
    "apgd-dlr": apgd.apgd,
    "apgd-t": apgd.apgd_targeted,
    "square": square.square,
}
if set(ATTACKS) != set(NAMES):  # a name added to specs.NAMES needs its loop here
    raise ImportError(f"attack table and names differ: {sorted(set(ATTACKS) ^ set(NAMES))}")


def attack(backend: Any, model: Any, x: T, y: T, spec: AttackSpec, rng: np.random.Generator) -> T:
    """``run`` on ``backend``'s ``model`` (tensors in, adversarial tensors out)."""
    return run(Oracle(backend, model), x, y, spec, rng)


def run(oracle: Oracle, x: T, y: T, spec: AttackSpec, rng: np.random.Generator) -> T:
    """Adversarial examples for ``spec`` in the model's current mode and path policy (the caller sets both).
    With ``restarts`` > 1 the attack runs again from new random numbers and keeps, per example, the first run
    whose output fools the model (logits averaged over ``spec.eot`` draws)."""
    if spec.name not in ATTACKS:
        raise ValueError(f"unknown attack {spec.name!r}; known: {sorted(ATTACKS)}")
    attack = ATTACKS[spec.name]
    best = attack(oracle, x, y, spec, rng)
    if spec.restarts == 1:
        return best
    ops = oracle.ops
    done = ops.argmax(eot_logits(oracle, best, spec.eot), 1) != y
    for _ in range(spec.restarts - 1):
        adv = attack(oracle, x, y, spec, rng)
        fooled = ops.argmax(eot_logits(oracle, adv, spec.eot), 1) != y
        best = where_rows(ops, fooled & ~done, adv, best)
        done = done | fooled
    return best
