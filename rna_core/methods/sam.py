"""``sam``: SAM (Foret et al. 2021): g = grad at w + rho g0 / ||g0||_2 (APART Eq. 7 with p = 2), g0 the gradient at
w, on the same batch and draw; the update is applied at w. The second pass leaves the BN running statistics
untouched (as the SAM reference implementation does; it runs BN through APART's Eq. 3 with a zero perturbation,
``track=False``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..apart import BNPerturbation
from ..backend import Grad
from ..losses import CE_MEAN
from ..validation import ConfigError, check_range, check_types
from .base import Method, Step, StepResult, register_method


@dataclass(frozen=True)
class SamOptions:
    """``sam_rho``: SAM's radius (p = 2; APART-SAM's too)."""

    section: ClassVar[str] = "sam"
    sam_rho: float = 0.05

    def __post_init__(self) -> None:
        check_types(self, "recipe key")
        check_range("recipe key", "sam_rho", self.sam_rho, 0)


def sam_scale(step: Step, grad: Grad, rho: float) -> float:
    """Eq. 7 with p = q = 2: delta_hat = rho g / ||g||_2, i.e. w + scale * g with scale = rho / ||g||_2."""
    return rho / (step.grad_norm(grad) + 1e-12)


def sam(step: Step, x: np.ndarray, y: np.ndarray) -> StepResult:
    zero = np.zeros(step.clf.bn_layout.size, np.float32)
    with step.frozen():
        g0 = step.gradient(CE_MEAN, x, y, bn=BNPerturbation(zero, 1, True))
        with step.shifted(g0, sam_scale(step, g0, step.recipe.sam_rho)):
            g1 = step.gradient(CE_MEAN, x, y, bn=BNPerturbation(zero, 1, False))
        step.update([(1.0, g1)])
    return step.result(g0, y)


def check_two_pass(recipe) -> None:
    """SAM and APART run fp32 and uncompiled (Eq. 3 and the sign steps are defined on float32 gradients), with
    each rank's own batch statistics (no SyncBN: APART's groups are per rank)."""
    if recipe.precision != "fp32" or recipe.compile:
        raise ConfigError(f"recipe keys 'precision' / 'compile': method {recipe.method!r} runs fp32 and uncompiled "
                          f"(got precision={recipe.precision!r}, compile={recipe.compile})")
    if recipe.sync_bn:
        raise ConfigError(f"recipe key 'sync_bn' is not supported with method {recipe.method!r}: its passes "
                          "compute Eq. 3 with each rank's own batch statistics (APART's groups are per rank)")


register_method(Method("sam", sam, options=(SamOptions,), check=check_two_pass, passes=lambda r: 2))
