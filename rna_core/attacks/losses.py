"""Float64 numpy references of the attack losses (``seams.Loss``); every backend's Oracle is tested against them."""

from __future__ import annotations

import numpy as np

from .seams import Loss


def reference(loss: Loss, logits: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The per-example value of ``loss`` (see :class:`~rna_core.attacks.seams.Loss`) in float64."""
    z = np.asarray(logits, np.float64)
    n, k = z.shape
    rows = np.arange(n)
    zy = z[rows, y]
    top = np.sort(z, axis=1)
    if loss.name == "ce":
        shifted = z - z.max(1, keepdims=True)
        return np.log(np.exp(shifted).sum(1)) - shifted[rows, y]
    if loss.name == "dlr":
        other = np.where(z.argmax(1) == y, top[:, -2], top[:, -1])
        return -(zy - other) / (top[:, -1] - top[:, -3] + 1e-12)
    if loss.name == "dlr-t":
        return -(zy - z[rows, w]) / (top[:, -1] - 0.5 * (top[:, -3] + top[:, -4]) + 1e-12)
    if loss.name == "cw":
        onehot = np.eye(k)[y]
        other = ((1 - onehot) * z).max(1)
        return np.asarray(w, np.float64) * np.maximum(zy - other, -loss.kappa)
    return (z * np.asarray(w, np.float64)).sum(1)
