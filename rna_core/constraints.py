"""Keeping CTRW's sigma inside sum(sigma) in [A, B] (Eq. 5), applied after every optimizer step.

Rules (``Recipe.sigma_constraint``):
- ``project`` (default): the Euclidean projection onto {sigma >= 0, A <= sum(sigma) <= B}, exact: the
  solution is max(sigma - t, 0) with the scalar t found by bisection on the monotone sum (t = 0 when the
  clipped sigma already satisfies both bounds).
- ``authors``: the authors' rule: when min(sigma) < A / m (m entries), every entry below A / m is raised
  by d = A / m - min(sigma). In exact arithmetic that lifts every such entry to at least min(sigma) + d = A / m,
  so sum >= A always holds afterwards (float32 rounding can leave it a hair below); it never enforces B (the
  authors' code has no upper bound). It is kept to reproduce their runs.
- ``none``: sigma is left alone (the paper's "without constraint" ablation).
- ``fixed``: sigma = value / m everywhere (the "fixed std" ablations at A, B or (A + B) / 2).
"""

from __future__ import annotations

import numpy as np

RULES = ("project", "authors", "none", "fixed")


def project(sigma: np.ndarray, lower: float, upper: float, iters: int = 100) -> np.ndarray:
    """argmin_s ||s - sigma||_2 subject to s >= 0 and lower <= sum(s) <= upper (0 <= lower <= upper)."""
    if not 0 <= lower <= upper:
        raise ValueError(f"need 0 <= lower <= upper, got [{lower}, {upper}]")
    s = np.asarray(sigma, np.float64)
    clipped = np.maximum(s, 0)
    total = clipped.sum()
    if lower <= total <= upper:
        return clipped.astype(sigma.dtype)
    target = lower if total < lower else upper
    # sum(max(s - t, 0)) is continuous and non-increasing in t: bisect for it to equal the target
    lo, hi = (-target / s.size + s.min() - 1.0, 0.0) if total < lower else (0.0, s.max())
    for _ in range(iters):
        t = (lo + hi) / 2
        if np.maximum(s - t, 0).sum() > target:
            lo = t
        else:
            hi = t
    return np.maximum(s - (lo + hi) / 2, 0).astype(sigma.dtype)


def authors_rule(sigma: np.ndarray, lower: float) -> np.ndarray:
    """Raise every entry under the floor lower / m by the smallest entry's shortfall (Xz-As/Constrained_Random_Adv)."""
    floor = lower / sigma.size
    low = sigma.min()
    if low >= floor:
        return sigma
    out = sigma.copy()
    out[sigma < floor] += floor - low
    return out


def constrain(sigma: np.ndarray, rule: str, lower: float, upper: float, fixed: float | None = None) -> np.ndarray:
    """Apply ``rule`` (see the module docstring) to one random weight's sigma."""
    if rule == "project":
        return project(sigma, lower, upper)
    if rule == "authors":
        return authors_rule(sigma, lower)
    if rule == "none":
        return sigma
    if rule == "fixed":
        if fixed is None or fixed < 0:
            raise ValueError(f"the fixed rule needs a value >= 0 for sum(sigma), got {fixed}")
        return np.full_like(sigma, fixed / sigma.size)
    raise ValueError(f"unknown sigma constraint {rule!r}; known: {RULES}")
