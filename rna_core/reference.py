"""Float64 numpy references of the normalization formulas; every backend's layers are tested against them.

``normalize(x, spec, ...)`` returns the output and the updated running statistics. x is N x C x H x W.
- BN / BGN (G groups; BN: G = C): statistics over (N, C/G, H, W) of each group; training normalizes with
  the biased variance and updates running <- (1 - m) running + m * stat, using the unbiased variance
  var * n / (n - 1), n = N * C/G * H * W; evaluation normalizes with the running statistics.
- GN / IN / LN (G groups; IN: G = C, LN: G = 1): statistics over (C/G, H, W) per sample, always.
Then y = gamma * x_hat + beta per channel if affine.
"""

from __future__ import annotations

import numpy as np

from .norms import NormSpec


def normalize(x: np.ndarray, spec: NormSpec, weight: np.ndarray | None = None, bias: np.ndarray | None = None,
              running_mean: np.ndarray | None = None, running_var: np.ndarray | None = None,
              training: bool = True, momentum: float = 0.1, eps: float = 1e-5):
    """(y, running_mean, running_var) in float64; running statistics are None for per-sample kinds."""
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    g = spec.num_groups(c)
    xg = x.reshape(n, g, c // g, h, w)
    rm = rv = None
    if spec.uses_batch_statistics:
        rm = np.zeros(g) if running_mean is None else np.asarray(running_mean, np.float64).copy()
        rv = np.ones(g) if running_var is None else np.asarray(running_var, np.float64).copy()
        if training:
            mean = xg.mean(axis=(0, 2, 3, 4))
            var = xg.var(axis=(0, 2, 3, 4))
            count = xg.size // g
            rm = (1 - momentum) * rm + momentum * mean
            rv = (1 - momentum) * rv + momentum * var * count / (count - 1)
        else:
            mean, var = rm, rv
        shape = (1, g, 1, 1, 1)
        y = (xg - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    else:
        mean = xg.mean(axis=(2, 3, 4), keepdims=True)
        var = xg.var(axis=(2, 3, 4), keepdims=True)
        y = (xg - mean) / np.sqrt(var + eps)
    y = y.reshape(n, c, h, w)
    if spec.affine:
        wt = np.ones(c) if weight is None else np.asarray(weight, np.float64)
        b = np.zeros(c) if bias is None else np.asarray(bias, np.float64)
        y = y * wt.reshape(1, c, 1, 1) + b.reshape(1, c, 1, 1)
    return y, rm, rv
