"""Training algorithms, written once against the Backend interface.

- ``clean``: W <- W - lr grad_W L(h(x; p), y), a fresh path p per step.
- ``madry``: white-box PGD adversarial training (Madry et al. 2018): the attack and the update use the
  same drawn path.
- ``blackbox``: RNA Algorithm 1: draw p_a, run PGD on h(.; p_a) with p_a held for every step, draw a
  fresh p, update on L(h(x + delta; p), y).
- ``ctrw``: CTRW Algorithm 1: the same with the draw covering the random weights' noise delta (attack on
  delta_a, update on a fresh delta); sigma is constrained (``constrain_sigma``) before the step's first forward,
  as the paper checks it "before each forward propagation" (so a fresh model, a resumed run or a user's own loop
  starts inside the bounds), and again after the optimizer step, so the saved model is inside them too.
- ``sam``: SAM (Foret et al. 2021): g = grad at w + rho g0 / ||g0||_2 (APART Eq. 7 with p = 2), g0 the gradient
  at w, on the same batch; the update is applied at w.
- ``apart`` / ``apart-sam``: APART Algorithm 1 (and Sec. 3.3's APART-SAM), see ``step_apart``.
All passes of one step run on one held draw of the path (and noise). The second pass of SAM, APART and
APART-SAM leaves the BN running statistics untouched (APART Sec. 3.2, as AdvProp's auxiliary BN; the SAM
reference implementation does the same).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .apart import BNPerturbation, adversarial_delta, second_pass_size
from .backend import Gradient, StepResult
from .classifier import Classifier
from .constraints import constrain
from .evaluation import attack_checked
from .recipes import Recipe


def _adversarial(clf: Classifier, x: np.ndarray, y: np.ndarray, recipe: Recipe, rng: np.random.Generator):
    clf.backend.set_training(clf.model, recipe.attack_in_train_mode)
    return attack_checked(clf, x, y, recipe.train_attack, rng)


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
    if not clf.sigma_names:
        raise ValueError("method 'ctrw' needs a model with random weights (arch key 'ctrw')")
    rule, _, which = recipe.sigma_constraint.partition("-")
    lo, hi = recipe.sigma_lower, recipe.sigma_upper
    fixed = {"lower": lo, "upper": hi, "middle": (lo + hi) / 2}.get(which)
    clf.set_sigmas({k: constrain(v, rule, lo, hi, fixed) for k, v in clf.sigmas().items()})


def step_ctrw(clf: Classifier, optimizer, x: np.ndarray, y: np.ndarray, recipe: Recipe,
              rng: np.random.Generator) -> StepResult:
    constrain_sigma(clf, recipe)
    result = step_blackbox(clf, optimizer, x, y, recipe, rng)
    constrain_sigma(clf, recipe)
    return result


def _sam_scale(clf: Classifier, grad: Gradient, rho: float) -> float:
    """Eq. 7 with p = q = 2: delta_hat = rho g / ||g||_2, i.e. w + scale * g with scale = rho / ||g||_2."""
    return rho / (clf.backend.grad_norm(grad) + 1e-12)


def step_sam(clf: Classifier, optimizer, x: np.ndarray, y: np.ndarray, recipe: Recipe,
             rng: np.random.Generator) -> StepResult:
    be, model = clf.backend, clf.model
    xb, yb = be.tensor(x), be.tensor(y)
    zero = np.zeros(clf.bn_layout.size, np.float32)
    with clf.controller.frozen():
        be.set_training(model, True)
        g0 = be.gradient(model, xb, yb, BNPerturbation(zero, 1, True))
        saved = be.shift_weights(model, g0, _sam_scale(clf, g0, recipe.sam_rho))
        g1 = be.gradient(model, xb, yb, BNPerturbation(zero, 1, False))
        be.restore_weights(model, saved)
        be.apply_gradient(model, optimizer, [(1.0, g1)])
    return StepResult(g0.loss, g0.correct, g0.count)


def step_apart(clf: Classifier, optimizer, x: np.ndarray, y: np.ndarray, recipe: Recipe,
               rng: np.random.Generator, sam: bool = False) -> StepResult:
    """APART Algorithm 1 on a batch D of M samples:

    1. pass 1 over D with theta = 0 (running statistics updated as in standard training): g_phi (parameters)
       and g_theta (the BN perturbations) from one backward (Eq. 4);
    2. theta = eps sign(g_theta) (line 5); g_theta is taken at a fresh zero vector in every step, so nothing
       accumulates across steps;
    3. N = ratio * M samples S drawn at random from D (a random permutation, so the interleaved groups
       S_1..S_n are random too); pass 2 over S with theta and BN statistics per group, running statistics
       untouched: h_phi = (1/n) sum_j E_{S_j} grad_phi L = E_S grad_phi L (equal group sizes);
    4. update with g = M/(M+N) g_phi + N/(M+N) h_phi. The paper's line 12 writes g_theta for the first term;
       g_theta lives in the BN-perturbation space and cannot be added to h_phi, and Sec. 3.2 (step 2) and the
       authors' code weight the clean parameter gradient, so we read it as g_phi.

    APART-SAM (``sam=True``, Sec. 3.3): after pass 1 the parameters are also shifted by Eq. 7's
    delta_hat(phi) = rho g_phi / ||g_phi||_2 (p = 2, from pass 1's gradient, "the second step unchanged"), pass
    2 runs at phi + delta_hat and the update is applied at phi. (The authors' released script instead wraps a
    SAM optimizer around both passes, four passes per step; we follow the paper's two-pass description.)
    """
    be, model = clf.backend, clf.model
    layout = clf.bn_layout
    if not layout.names:
        raise ValueError(f"method {recipe.method!r} needs BN layers (norms 'bn'), the model has none")
    m = len(x)
    n = second_pass_size(m, recipe.apart_ratio, recipe.apart_groups)
    with clf.controller.frozen():
        be.set_training(model, True)
        g_phi = be.gradient(model, be.tensor(x), be.tensor(y), BNPerturbation(np.zeros(layout.size), 1, True))
        theta = adversarial_delta(g_phi.delta, recipe.apart_eps)
        s = rng.permutation(m)[:n]
        saved = be.shift_weights(model, g_phi, _sam_scale(clf, g_phi, recipe.sam_rho)) if sam else None
        h_phi = be.gradient(model, be.tensor(x[s]), be.tensor(y[s]), BNPerturbation(theta, recipe.apart_groups,
                                                                                     False))
        if saved is not None:
            be.restore_weights(model, saved)
        be.apply_gradient(model, optimizer, [(m / (m + n), g_phi), (n / (m + n), h_phi)])
    return StepResult(g_phi.loss, g_phi.correct, g_phi.count)


def step_apart_sam(clf: Classifier, optimizer, x: np.ndarray, y: np.ndarray, recipe: Recipe,
                   rng: np.random.Generator) -> StepResult:
    return step_apart(clf, optimizer, x, y, recipe, rng, sam=True)


ALGORITHMS: dict[str, Callable[..., StepResult]] = {
    "clean": step_clean,
    "madry": step_madry,
    "blackbox": step_blackbox,
    "ctrw": step_ctrw,
    "sam": step_sam,
    "apart": step_apart,
    "apart-sam": step_apart_sam,
}
