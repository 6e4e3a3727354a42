"""A training method defined in this file alone, with no backend code: Gaussian-noise training with a label-smoothed
cross-entropy, W <- W - lr grad_W L_s(h(x + n; p), y), n ~ N(0, noise_sigma^2) per pixel from the attack stream (not
clipped to [0, 1]: clipped pixels tie in max-pooling, whose gradient torch and MindSpore route to different inputs
of a tie), L_s = (1 - s) CE + s mean_k(-log softmax_k) with s the loss's kappa. The method, its recipe key
``noise_sigma`` and its check, and the loss with its float64 reference are registered here. It trains through
``rna_core.train`` on torch, and 20 steps on fresh paths give the same model on torch and on MindSpore in both
modes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

import rna_core
from rna_core.apps.parity import compare_training
from rna_core.losses import LOSSES, Loss, LossKind, register_loss
from rna_core.methods import METHODS, Method, Step, StepResult, register_method
from rna_core.registry import get_backend
from rna_core.validation import ConfigError, check_range, check_types


def smooth_ce(ops, z, y, w, kappa):
    log_p = ops.log_softmax(z)
    return -(1 - kappa) * ops.pick(log_p, y) - kappa * ops.mean(log_p, 1)


def _smooth_ce_reference(z, y, w, kappa):
    shifted = z - z.max(1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    return -(1 - kappa) * log_p[np.arange(len(y)), y] - kappa * log_p.mean(1)


@dataclass(frozen=True)
class NoiseOptions:
    section: ClassVar[str] = "noise"
    noise_sigma: float = 0.1

    def __post_init__(self) -> None:
        check_types(self, "recipe key")
        check_range("recipe key", "noise_sigma", self.noise_sigma, 0)


def noisy(step: Step, x: np.ndarray, y: np.ndarray) -> StepResult:
    noise = step.rng.standard_normal(x.shape).astype(np.float32) * step.recipe.noise_sigma
    with step.frozen():
        return step.descend(SMOOTH, x + noise, y)


def _check(recipe) -> None:
    if recipe.noise_sigma > 1:
        raise ConfigError(f"recipe key 'noise_sigma' above 1 drowns [0, 1] images, got {recipe.noise_sigma}")


if "smooth-ce" not in LOSSES:
    register_loss(LossKind("smooth-ce", smooth_ce, _smooth_ce_reference))
SMOOTH = Loss("smooth-ce", kappa=0.1, mean=True)
if "noisy" not in METHODS:
    register_method(Method("noisy", noisy, options=(NoiseOptions,), check=_check))


def test_the_method_and_its_key_are_a_recipe_like_the_built_in_ones(tmp_path):
    with pytest.raises(ConfigError, match="noise_sigma"):
        rna_core.get_recipe("quick", method="noisy", noise_sigma=2.0)
    with pytest.raises(ConfigError, match="'noise_sigma' must be a number"):
        rna_core.get_recipe("quick", method="noisy", noise_sigma="a lot")
    res = rna_core.train("quick", "torch", tmp_path, progress=False, method="noisy", noise_sigma=0.2, arch="small_cnn",
                         width=4, epochs=1, train_samples=128, batch_size=32, eval_samples=32, eval_attack=None)
    assert res.recipe.options["noise"].noise_sigma == 0.2 and np.isfinite(res.history[0]["train_loss"])


@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_the_loss_is_its_float64_formula_on_both_backends(mode):
    rng = np.random.default_rng(0)
    z, y = rng.standard_normal((6, 10)).astype(np.float32), rng.integers(0, 10, 6)
    for be in (get_backend("torch"), get_backend("mindspore", mode=mode)):
        ops = be.ops
        got = ops.numpy(smooth_ce(ops, ops.tensor(z), ops.tensor(y), ops.tensor(y), 0.1))
        np.testing.assert_allclose(got, SMOOTH.reference(z, y, y), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_twenty_steps_train_the_same_model_on_both_backends(mode):
    diffs = compare_training("torch", get_backend("mindspore", mode=mode), "bn+in", "noisy", steps=20, width=4,
                             batch=8)
    print(f"\nnoisy {mode:8s} " + "  ".join(f"{k}={v:.1e}" for k, v in diffs.items()))
    assert max(diffs.values()) < 1e-4, diffs
