"""Running an attack: its registered loop (``registry.kind_of``), with restarts, on a model through its Oracle."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ops import T
from .common import eot_logits, where_rows
from .oracle import Oracle
from .registry import kind_of
from .specs import AttackSpec


def attack(backend: Any, model: Any, x: T, y: T, spec: AttackSpec, rng: np.random.Generator) -> T:
    """``run`` on ``backend``'s ``model`` (tensors in, adversarial tensors out)."""
    return run(Oracle(backend, model), x, y, spec, rng)


def run(oracle: Oracle, x: T, y: T, spec: AttackSpec, rng: np.random.Generator) -> T:
    """Adversarial examples for ``spec`` in the model's current mode and path policy (the caller sets both).
    With ``restarts`` > 1 the attack runs again from new random numbers and keeps, per example, the first run
    whose output fools the model (logits averaged over ``spec.eot`` draws)."""
    loop = kind_of(spec.name).run
    best = loop(oracle, x, y, spec, rng)
    if spec.restarts == 1:
        return best
    ops = oracle.ops
    done = ops.argmax(eot_logits(oracle, best, spec.eot), 1) != y
    for _ in range(spec.restarts - 1):
        adv = loop(oracle, x, y, spec, rng)
        fooled = ops.argmax(eot_logits(oracle, adv, spec.eot), 1) != y
        best = where_rows(ops, fooled & ~done, adv, best)
        done = done | fooled
    return best
