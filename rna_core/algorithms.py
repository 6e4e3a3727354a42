"""Training algorithms, written once against the Backend interface.

- ``clean``: W <- W - lr grad_W L(h(x; p), y), a fresh path p per step.
- ``madry``: white-box PGD adversarial training (Madry et al. 2018): the attack and the update use the
  same drawn path.
- ``blackbox``: RNA Algorithm 1: draw p_a, run PGD on h(.; p_a) with p_a held for every step, draw a
  fresh p, update on L(h(x + delta; p), y).
- ``ctrw``: CTRW Algorithm 1: the same with the draw covering the random weights' noise delta (attack on
  delta_a, update on a fresh delta), then sigma constrained (``constrain_sigma``) after the optimizer step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .backend import StepResult
from .classifier import Classifier
from .constraints import constrain
from .evaluation import craft
from .recipes import Recipe


def _adversarial(clf: Classifier, x: np.ndarray, y: np.ndarray, recipe: Recipe, rng: np.random.Generator):
    clf.backend.set_training(clf.model, recipe.attack_in_train_mode)
    return craft(clf, x, y, recipe.train_attack, rng)


def _update(clf: Classifier, optimizer, x, y: np.ndarray) -> StepResult:
    clf.backend.set_training(clf.model, True)
    return clf.backend.train_step(clf.model, optimizer, x, clf.backend.tensor(y))


def step_clean(clf: Classifier, optimizer, x: np.ndarray, y: np.ndarray, recipe: Recipe,
               rng: np.random.Generator) -> StepResult:
    with clf.controller.frozen():
        return _update(clf, optimizer, clf.backend.tensor(x), y)


def step_madry(clf: Classifier, optimizer, x: np.ndarray, y: np.ndarray, recipe: Recipe,
               rng: np.random.Generator) -> StepResult:
    with clf.controller.frozen():
        adv = _adversarial(clf, x, y, recipe, rng)
        return _update(clf, optimizer, adv, y)


def step_blackbox(clf: Classifier, optimizer, x: np.ndarray, y: np.ndarray, recipe: Recipe,
                  rng: np.random.Generator) -> StepResult:
    with clf.controller.frozen():  # p_a, held for all attack steps
        adv = _adversarial(clf, x, y, recipe, rng)
    with clf.controller.frozen():  # p, a fresh draw for the update
        return _update(clf, optimizer, adv, y)


def constrain_sigma(clf: Classifier, recipe: Recipe) -> None:
    """Apply ``recipe.sigma_constraint`` with bounds [sigma_lower, sigma_upper] to every random weight's sigma."""
    names = clf.sigma_names
    if not names:
        raise ValueError("method 'ctrw' needs a model with random weights (arch key 'ctrw')")
    rule, _, which = recipe.sigma_constraint.partition("-")
    lo, hi = recipe.sigma_lower, recipe.sigma_upper
    fixed = {"lower": lo, "upper": hi, "middle": (lo + hi) / 2}.get(which)
    sigmas = clf.backend.get_params(clf.model, names)
    clf.backend.set_params(clf.model, {k: constrain(v, rule, lo, hi, fixed) for k, v in sigmas.items()})


def step_ctrw(clf: Classifier, optimizer, x: np.ndarray, y: np.ndarray, recipe: Recipe,
              rng: np.random.Generator) -> StepResult:
    result = step_blackbox(clf, optimizer, x, y, recipe, rng)
    constrain_sigma(clf, recipe)
    return result


ALGORITHMS: dict[str, Callable[..., StepResult]] = {
    "clean": step_clean,
    "madry": step_madry,
    "blackbox": step_blackbox,
    "ctrw": step_ctrw,
}
