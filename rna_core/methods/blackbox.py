"""``blackbox``: RNA's black-box adversarial training (Algorithm 1): draw p_a, run the training attack on
h(.; p_a) with p_a held for every step, draw a fresh p, update on L(h(x + delta; p), y) (batch-mean CE)."""

from __future__ import annotations

import numpy as np

from ..losses import CE_MEAN
from .base import Method, Step, StepResult, register_method


def blackbox(step: Step, x: np.ndarray, y: np.ndarray) -> StepResult:
    with step.frozen():  # p_a, held for all attack steps
        adv = step.attack(x, y)
    with step.frozen():  # p, a fresh draw for the update
        return step.descend(CE_MEAN, adv, y)


register_method(Method("blackbox", blackbox, adversarial=True))
