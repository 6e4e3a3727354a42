"""Square attack, L-inf (Andriushchenko et al. 2020): gradient-free random search on the margin loss.

Start from vertical stripes x + (+-eps per column and channel); then each query draws one window of side
s(it) (``schedules.square_size``) and sets every channel of it to +-eps; the change is kept where it lowers the
margin z_y - max_{j != y} z_j, and an example stops once its margin is <= 0. With ``eot`` > 1 the margin is
averaged over that many fresh draws (EOT-Square: a square is accepted only if the averaged loss improves).
All random numbers (stripes, windows, signs) come from the core's Generator.
"""

from __future__ import annotations

import math

import numpy as np

from ...ops import Ops, T
from ..common import eot_logits, where_rows
from ..oracle import Oracle
from ..registry import AttackKind, Word, register_attack
from ..schedules import square_size
from ..specs import AttackSpec


def square(queries: int = 5000, eps: float = 8 / 255, p_init: float = 0.8, eot: int = 1) -> AttackSpec:
    return AttackSpec("square", eps=eps, steps=queries, p_init=p_init, random_start=False, eot=eot)


def _linf_only(spec: AttackSpec) -> None:
    if spec.norm != "linf":
        raise ValueError("square is implemented for the L-inf norm only")


def margin(ops: Ops, logits: T, y: T) -> T:
    """z_y - max_{j != y} z_j: negative once the example is misclassified."""
    others = ops.where(ops.one_hot(y, logits.shape[1], logits) > 0, -math.inf, logits)
    return ops.pick(logits, y) - ops.max(others, 1)


def run_square(oracle: Oracle, x: T, y: T, spec: AttackSpec, rng: np.random.Generator) -> T:
    ops, eps = oracle.ops, spec.eps
    n, c, h, w = x.shape

    def loss(images: T, labels: T) -> T:
        return margin(ops, eot_logits(oracle, images, spec.eot), labels)

    best = ops.clip(x + ops.tensor(rng.choice([-eps, eps], size=(n, c, 1, w)).astype(np.float32)), 0.0, 1.0)
    best_margin = loss(best, y)
    for it in range(spec.steps):
        idx = ops.nonzero(best_margin > 0)
        if idx.shape[0] == 0:
            break
        s = min(square_size(spec.p_init, it, spec.steps, h * w, 1), h, w)
        vh, vw = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        window = np.zeros((1, 1, h, w), bool)
        window[..., vh:vh + s, vw:vw + s] = True
        xi, cur = ops.gather(x, idx), ops.gather(best, idx)
        signs = ops.tensor(rng.choice([-eps, eps], size=(idx.shape[0], c, 1, 1)).astype(np.float32))
        delta = ops.where(ops.tensor(window), signs, cur - xi)
        cand = ops.clip(xi + ops.clip(delta, -eps, eps), 0.0, 1.0)
        m, old = loss(cand, ops.gather(y, idx)), ops.gather(best_margin, idx)
        better = m < old
        best = ops.scatter(best, idx, where_rows(ops, better, cand, cur))
        best_margin = ops.scatter(best_margin, idx, ops.where(better, m, old))
    return best


register_attack(AttackKind("square", run_square, lambda s: "Square", gradient_free=True, check=_linf_only,
                           examples={"square": lambda: square(20, 8 / 255)}),
                Word("square", lambda eps, n: [square(n or 5000, eps)], "Square (n = 5000 queries)"))
