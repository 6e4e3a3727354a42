"""``ctrw``: CTRW's Algorithm 1, the black-box scheme over the random weights' noise (attack on delta_a, update on a
fresh delta, with the path if the model has one), sum(sigma) of every random weight kept in [A, B]
(``recipe.sigma_constraint``, ``rna_core.constraints``). sigma is constrained before the step's first forward,
as the paper checks it "before each forward propagation" (so a fresh model, a resumed run or a user's own loop
starts inside the bounds), and again after the optimizer step, so the saved model is inside them too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..constraints import constrain
from ..validation import ConfigError, check_choice, check_range, check_types
from .base import Method, Step, StepResult, register_method
from .blackbox import blackbox

SIGMA_CONSTRAINTS = ("project", "authors", "none", "fixed-lower", "fixed-upper", "fixed-middle")


@dataclass(frozen=True)
class CtrwOptions:
    """CTRW's keys: ``sigma_lower`` / ``sigma_upper`` are A and B of Eq. 5 for the sum over each random weight's sigma
    (the paper's CIFAR values: A = 1/|alpha| = 1000 with alpha = -1e-3, B ~ 2400 from Lemma 2);
    ``sigma_constraint``: ``project`` (both bounds, exact projection; default), ``authors`` (their rule: lower
    bound only), ``none`` (the "without constraint" ablation), ``fixed-lower`` / ``fixed-upper`` /
    ``fixed-middle`` (the "fixed std" ablations: sum(sigma) held at A, B or (A + B) / 2). The weight's placement
    is the model's (``ctrw_position``, ``ctrw_variant``)."""

    section: ClassVar[str] = "ctrw"
    sigma_lower: float = 1000.0
    sigma_upper: float = 2400.0
    sigma_constraint: str = "project"

    def __post_init__(self) -> None:
        check_types(self, "recipe key")
        check_range("recipe key", "sigma_lower", self.sigma_lower, 0)
        check_choice("recipe key", "sigma_constraint", self.sigma_constraint, SIGMA_CONSTRAINTS)
        if self.sigma_upper < self.sigma_lower:
            raise ConfigError(f"recipe keys need sigma_lower <= sigma_upper, got {self.sigma_lower}, "
                              f"{self.sigma_upper}")


def constrain_sigma(clf: Any, recipe: Any) -> None:
    """Apply ``recipe.sigma_constraint`` with bounds [sigma_lower, sigma_upper] to every random weight's sigma."""
    if not clf.sigma_names:
        raise ValueError("method 'ctrw' needs a model with random weights (arch key 'ctrw')")
    rule, _, which = recipe.sigma_constraint.partition("-")
    lo, hi = recipe.sigma_lower, recipe.sigma_upper
    fixed = {"lower": lo, "upper": hi, "middle": (lo + hi) / 2}.get(which)
    clf.set_sigmas({k: constrain(v, rule, lo, hi, fixed) for k, v in clf.sigmas().items()})


def ctrw(step: Step, x: np.ndarray, y: np.ndarray) -> StepResult:
    constrain_sigma(step.clf, step.recipe)
    result = blackbox(step, x, y)
    constrain_sigma(step.clf, step.recipe)
    return result


register_method(Method("ctrw", ctrw, adversarial=True, options=(CtrwOptions,)))
