"""``apart`` and ``apart-sam``: APART Algorithm 1 and Sec. 3.3's APART-SAM, on a batch D of M samples:

1. pass 1 over D with theta = 0 (running statistics updated as in standard training): g_phi (parameters) and
   g_theta (the BN perturbations) from one backward (Eq. 4);
2. theta = eps sign(g_theta) (line 5); g_theta is taken at a fresh zero vector in every step, so nothing
   accumulates across steps;
3. N = ratio * M samples S drawn at random from D (a random permutation, so the interleaved groups S_1..S_n are
   random too); pass 2 over S with theta and BN statistics per group, running statistics untouched:
   h_phi = (1/n) sum_j E_{S_j} grad_phi L = E_S grad_phi L (equal group sizes);
4. update with g = M/(M+N) g_phi + N/(M+N) h_phi. The paper's line 12 writes g_theta for the first term; g_theta
   lives in the BN-perturbation space and cannot be added to h_phi, and Sec. 3.2 (step 2) and the authors' code
   weight the clean parameter gradient, so we read it as g_phi.

APART-SAM: after pass 1 the parameters are also shifted by Eq. 7's delta_hat(phi) = rho g_phi / ||g_phi||_2 (p = 2,
from pass 1's gradient, "the second step unchanged"), pass 2 runs at phi + delta_hat and the update is applied at
phi. (The authors' released script instead wraps a SAM optimizer around both passes, four passes per step; we
follow the paper's two-pass description.) Both passes run on one held draw of the path (and noise).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..apart import BNPerturbation, adversarial_delta, second_pass_size
from ..backend import DELTA, PARAMS
from ..losses import CE_MEAN
from ..validation import check_range, check_types
from .base import Method, Step, StepResult, register_method
from .sam import SamOptions, check_two_pass, sam_scale


@dataclass(frozen=True)
class ApartOptions:
    """APART's keys: ``apart_eps`` the radius of the BN perturbations, ``apart_ratio`` = N / M the share of the batch
    in the second pass, ``apart_groups`` = n the number of BN groups in that pass (Sec. 4.1: 0.1, 1, 16)."""

    section: ClassVar[str] = "apart"
    apart_eps: float = 0.1
    apart_ratio: float = 1.0
    apart_groups: int = 16

    def __post_init__(self) -> None:
        check_types(self, "recipe key")
        check_range("recipe key", "apart_eps", self.apart_eps, 0)
        check_range("recipe key", "apart_ratio", self.apart_ratio, 0, 1, low_open=True)
        check_range("recipe key", "apart_groups", self.apart_groups, 1)


def apart(step: Step, x: np.ndarray, y: np.ndarray, sam: bool = False) -> StepResult:
    recipe, layout = step.recipe, step.clf.bn_layout
    if not layout.names:
        raise ValueError(f"method {recipe.method!r} needs BN layers (norms 'bn'), the model has none")
    m = len(x)
    n = second_pass_size(m, recipe.apart_ratio, recipe.apart_groups)
    with step.frozen():
        g_phi = step.gradient(CE_MEAN, x, y, bn=BNPerturbation(np.zeros(layout.size), 1, True), wrt=(PARAMS, DELTA))
        theta = adversarial_delta(step.ops.numpy(g_phi.delta), recipe.apart_eps)
        s = step.rng.permutation(m)[:n]
        shift = step.shifted(g_phi, sam_scale(step, g_phi, recipe.sam_rho)) if sam else nullcontext()
        with shift:
            h_phi = step.gradient(CE_MEAN, x[s], y[s], bn=BNPerturbation(theta, recipe.apart_groups, False))
        step.update([(m / (m + n), g_phi), (n / (m + n), h_phi)])
    return step.result(g_phi, y)


def apart_sam(step: Step, x: np.ndarray, y: np.ndarray) -> StepResult:
    return apart(step, x, y, sam=True)


def check_apart(recipe) -> None:
    """The second pass's N = ratio * M must split into ``apart_groups`` equal groups; fp32, uncompiled, no SyncBN."""
    second_pass_size(recipe.batch_size, recipe.apart_ratio, recipe.apart_groups)
    check_two_pass(recipe)


register_method(Method("apart", apart, options=(ApartOptions,), check=check_apart, passes=lambda r: 1 + r.apart_ratio))
register_method(Method("apart-sam", apart_sam, options=(ApartOptions, SamOptions), check=check_apart,
                       passes=lambda r: 1 + r.apart_ratio))
