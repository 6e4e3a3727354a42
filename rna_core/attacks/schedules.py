"""The attacks' random numbers and schedules, in numpy: every backend attacks with the same draws.

Random starts, targets and Square's stripes, windows and signs all come from the core's Generator, in the order
the loops ask for them, so an attack is reproducible on one backend and identical across backends.
"""

from __future__ import annotations

import math

import numpy as np

from .registry import kind_of
from .specs import AttackSpec


def random_start(spec: AttackSpec, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """delta_0 (float32, ``shape``). PGD L-inf: U(-eps, eps) per pixel; PGD L2: a Gaussian direction scaled to
    radius eps * U(0, 1) (torchattacks' PGDL2); APGD: eps t / max|t|, t ~ U(-1, 1) (L-inf) or eps t / ||t||_2,
    t ~ N(0, 1) (L2), as AutoAttack; zeros for attacks without a random start."""
    if not (kind_of(spec.name).random_start and spec.random_start and spec.eps > 0):
        return np.zeros(shape, np.float32)
    n, per_example = shape[0], (-1, *[1] * (len(shape) - 1))
    if spec.name == "pgd" and spec.norm == "linf":
        return rng.uniform(-spec.eps, spec.eps, size=shape).astype(np.float32)
    if spec.norm == "linf":
        t = rng.uniform(-1, 1, size=shape)
        return (spec.eps * t / np.abs(t.reshape(n, -1)).max(1).reshape(per_example)).astype(np.float32)
    d = rng.standard_normal(size=shape).reshape(n, -1)
    radius = rng.uniform(0, 1, size=(n, 1)) if spec.name == "pgd" else np.ones((n, 1))
    d *= spec.eps * radius / (np.linalg.norm(d, axis=1, keepdims=True) + 1e-12)
    return d.reshape(shape).astype(np.float32)


def random_targets(y: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly drawn class different from each label (targeted FGSM/PGD/MIFGSM)."""
    return (y + rng.integers(1, num_classes, size=len(y))) % num_classes


def square_size(p_init: float, it: int, n_queries: int, features: int, channels: int) -> int:
    """Side of Square's window at query ``it``: p halves at 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000
    of 10,000 (rescaled to ``n_queries``), s = round(sqrt(p * H * W)) >= 1 (Andriushchenko et al. 2020)."""
    t = int(it / n_queries * 10000)
    halvings = sum(t > b for b in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000))
    p = p_init / 2**halvings
    return max(int(round(math.sqrt(p * features / channels))), 1)


def apgd_checkpoints(steps: int) -> list[int]:
    """Iterations after which APGD checks its step size: p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1}
    - 0.03, 0.06) (Croce & Hein 2020, Sec. 3.2), in AutoAttack's integer form: first interval int(0.22 N), each
    next one int(0.03 N) shorter, never below int(0.06 N) (all at least 1)."""
    k, decr, k_min = (max(int(f * steps), 1) for f in (0.22, 0.03, 0.06))
    out, at = [], k
    while at <= steps:
        out.append(at)
        k = max(k - decr, k_min)
        at += k
    return out
