"""Losses of the logits, written once against ``Ops``: they serve the attacks and the training methods alike.

A loss maps logits z (N, K), labels y (N,) and per-example data w to a per-example value (N,); ``Loss`` names one
with its constant kappa and its reduction (the gradient a backend takes is that of the sum, or with ``mean`` of
the batch mean). Each kind carries its float64 numpy reference, to which the contract tests hold every backend:

- ``ce``: CE(z, y) = -log softmax(z)_y;
- ``kl``: KL(softmax(w) || softmax(z)) = sum_k p_k (log p_k - log q_k), w the reference logits (TRADES' term, with
  the clean logits as w);
- ``dlr``: -(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3) (Croce & Hein 2020, Eq. 5; pi sorts z descending);
- ``dlr-t``: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2), target t = w;
- ``cw``: w * max(z_y - m, -kappa), w the per-example constant c and m = max_j ((1 - onehot_y) z)_j: the other
  classes' maximum taken with the true class's entry set to 0, as torchattacks 3.5.1 does (it equals
  max_{j != y} z_j unless every other logit is negative);
- ``logits``: sum_k w_k z_k (one Jacobian row per one-hot w).

A loss of several forwards on one draw (a training objective such as TRADES') receives z as a tuple of logits.
New kinds register with ``register_loss``; a backend needs no code for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .ops import Ops, T

LossFn = Callable[[Ops, T, T, T, float], T]
Reference = Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray]


@dataclass(frozen=True)
class LossKind:
    """A registered loss: ``fn(ops, z, y, w, kappa) -> (N,)`` and its float64 ``reference`` of the same signature
    without ``ops``."""

    name: str
    fn: LossFn
    reference: Reference


LOSSES: dict[str, LossKind] = {}


def register_loss(kind: LossKind) -> LossKind:
    """Add ``kind`` to ``LOSSES`` (a name is registered once)."""
    if kind.name in LOSSES:
        raise ValueError(f"loss {kind.name!r} is registered already")
    LOSSES[kind.name] = kind
    return kind


@dataclass(frozen=True)
class Loss:
    """A loss kind with its constant ``kappa`` and reduction: the scalar differentiated is sum_n l_n, or with
    ``mean`` (1/N) sum_n l_n (torchattacks' convention for FGSM / PGD / MIFGSM, and the training loss)."""

    name: str
    kappa: float = 0.0
    mean: bool = False

    def __post_init__(self) -> None:
        if self.name not in LOSSES:
            raise ValueError(f"unknown loss {self.name!r}; known: {sorted(LOSSES)}")

    @property
    def fn(self) -> LossFn:
        return LOSSES[self.name].fn

    def reference(self, logits: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        """The per-example value in float64."""
        return LOSSES[self.name].reference(np.asarray(logits, np.float64), np.asarray(y), np.asarray(w), self.kappa)


def _sorted(z: np.ndarray) -> np.ndarray:
    return np.sort(z, axis=1)


def cross_entropy(ops: Ops, z: T, y: T, w: T, kappa: float) -> T:
    return -ops.pick(ops.log_softmax(z), y)


def _cross_entropy_ref(z, y, w, kappa):
    shifted = z - z.max(1, keepdims=True)
    return np.log(np.exp(shifted).sum(1)) - shifted[np.arange(len(y)), y]


def kl_divergence(ops: Ops, z: T, y: T, w: T, kappa: float) -> T:
    log_p = ops.log_softmax(w)
    return ops.sum(ops.exp(log_p) * (log_p - ops.log_softmax(z)), 1)


def _log_softmax_ref(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


def _kl_ref(z, y, w, kappa):
    log_p = _log_softmax_ref(np.asarray(w, np.float64))
    return (np.exp(log_p) * (log_p - _log_softmax_ref(z))).sum(1)


def dlr(ops: Ops, z: T, y: T, w: T, kappa: float) -> T:
    s = ops.sort(z, 1)[0]
    other = ops.where(ops.argmax(z, 1) == y, s[:, -2], s[:, -1])
    return -(ops.pick(z, y) - other) / (s[:, -1] - s[:, -3] + 1e-12)


def _dlr_ref(z, y, w, kappa):
    top = _sorted(z)
    other = np.where(z.argmax(1) == y, top[:, -2], top[:, -1])
    return -(z[np.arange(len(y)), y] - other) / (top[:, -1] - top[:, -3] + 1e-12)


def dlr_targeted(ops: Ops, z: T, y: T, w: T, kappa: float) -> T:
    s = ops.sort(z, 1)[0]
    return -(ops.pick(z, y) - ops.pick(z, w)) / (s[:, -1] - 0.5 * (s[:, -3] + s[:, -4]) + 1e-12)


def _dlr_targeted_ref(z, y, w, kappa):
    top, rows = _sorted(z), np.arange(len(y))
    return -(z[rows, y] - z[rows, w]) / (top[:, -1] - 0.5 * (top[:, -3] + top[:, -4]) + 1e-12)


def cw_margin(ops: Ops, z: T, y: T, w: T, kappa: float) -> T:
    other = ops.max((1 - ops.one_hot(y, z.shape[1], z)) * z, 1)
    return w * ops.clip(ops.pick(z, y) - other, -kappa, None)


def _cw_ref(z, y, w, kappa):
    other = ((1 - np.eye(z.shape[1])[y]) * z).max(1)
    return np.asarray(w, np.float64) * np.maximum(z[np.arange(len(y)), y] - other, -kappa)


def weighted_logits(ops: Ops, z: T, y: T, w: T, kappa: float) -> T:
    return ops.sum(z * w, 1)


def _weighted_logits_ref(z, y, w, kappa):
    return (z * np.asarray(w, np.float64)).sum(1)


for _kind in (LossKind("ce", cross_entropy, _cross_entropy_ref), LossKind("kl", kl_divergence, _kl_ref),
              LossKind("dlr", dlr, _dlr_ref), LossKind("dlr-t", dlr_targeted, _dlr_targeted_ref),
              LossKind("cw", cw_margin, _cw_ref), LossKind("logits", weighted_logits, _weighted_logits_ref)):
    register_loss(_kind)

CE, CE_MEAN, KL = Loss("ce"), Loss("ce", mean=True), Loss("kl")
DLR, DLR_TARGETED, LOGITS = Loss("dlr"), Loss("dlr-t"), Loss("logits")


def cross_entropy_np(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-example CE in float64 of host logits (the evaluation's and the parity checks' numpy loss)."""
    return _cross_entropy_ref(np.asarray(logits, np.float64), np.asarray(y), np.asarray(y), 0.0)
