"""``eot``: adversarial training against an attacker who averages over the model's randomness: Madry's min-max
with the training attack's every gradient averaged over K fresh draws (EOT-PGD: ``recipe.train_attack`` with eot =
``eot_attack_draws``), then W <- W - lr (1/M) sum_m grad_W CE(h(x'; p_m), y) over M fresh draws
(``eot_update_draws``; M = 1: one fresh draw). A model with random weights keeps sum(sigma) in [A, B] as ``ctrw``
does (before the step's first forward and after its update). A step costs (K steps + M) forward-backward passes
against black-box training's (steps + 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..losses import CE_MEAN
from ..validation import check_range, check_types
from .base import Method, Step, StepResult, register_method
from .ctrw import constrain_sigma


@dataclass(frozen=True)
class EotOptions:
    section: ClassVar[str] = "eot"
    eot_attack_draws: int = 8
    eot_update_draws: int = 1

    def __post_init__(self) -> None:
        check_types(self, "recipe key")
        check_range("recipe key", "eot_attack_draws", self.eot_attack_draws, 1)
        check_range("recipe key", "eot_update_draws", self.eot_update_draws, 1)


def eot(step: Step, x: np.ndarray, y: np.ndarray) -> StepResult:
    r = step.recipe
    if step.clf.sigma_names:
        constrain_sigma(step.clf, r)
    adv = step.attack(x, y, r.train_attack.replace(eot=r.eot_attack_draws))  # fresh draws for every forward
    grads = [step.gradient(CE_MEAN, adv, y) for _ in range(r.eot_update_draws)]  # each on a fresh draw
    step.update([(1.0 / len(grads), g) for g in grads])
    if step.clf.sigma_names:
        constrain_sigma(step.clf, r)
    return step.result(grads[0], y)


register_method(Method("eot", eot, adversarial=True, options=(EotOptions,),
                       passes=lambda r: r.train_attack.steps * r.eot_attack_draws + r.eot_update_draws))
