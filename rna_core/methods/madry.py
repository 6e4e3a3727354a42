"""``madry``: white-box PGD adversarial training (Madry et al. 2018): one draw held for the attack and the
update, W <- W - lr grad_W L(h(x + delta; p), y), delta = ``recipe.train_attack`` on h(.; p)."""

from __future__ import annotations

import numpy as np

from ..losses import CE_MEAN
from .base import Method, Step, StepResult, register_method


def madry(step: Step, x: np.ndarray, y: np.ndarray) -> StepResult:
    with step.frozen():
        return step.descend(CE_MEAN, step.attack(x, y), y)


register_method(Method("madry", madry, adversarial=True))
