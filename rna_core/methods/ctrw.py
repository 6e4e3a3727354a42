"""``ctrw``: CTRW's Algorithm 1, the black-box scheme over the random weights' noise (attack on delta_a, update on a
fresh delta, with the path if the model has one), sum(sigma) of every random weight kept in [A, B]
(``recipe.sigma_constraint``, ``rna_core.constraints``). sigma is constrained before the step's first forward,
as the paper checks it "before each forward propagation" (so a fresh model, a resumed run or a user's own loop
starts inside the bounds), and again after the optimizer step, so the saved model is inside them too."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..constraints import constrain
from .base import Method, Step, StepResult, register_method
from .blackbox import blackbox


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


register_method(Method("ctrw", ctrw, adversarial=True))
