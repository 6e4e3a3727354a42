"""CW-L2 (Carlini & Wagner 2017), minimum-norm.

Adam (torch's defaults: betas 0.9 / 0.999, eps 1e-8) on w, x' = (tanh w + 1) / 2 = sigmoid(2 w), minimizing
||x' - x||_2^2 + c max(z_y - max_{j != y} z_j, -kappa) per example; the gradient is assembled by the chain rule,
(2 (x' - x) + c d margin / dx') 2 x' (1 - x'), from the Oracle's margin gradient. The sigmoid form is used because
it is accurate on every backend (MindSpore's CPU tanh is off by up to 1.5e-5, and Adam's first step, lr sign(g),
turns such errors into full steps). The run stops early when the total cost rises at a tenth of the steps
(torchattacks' rule) and keeps, per example, the smallest perturbation that fooled the model. ``search_steps`` > 1
adds a per-example binary search over c: x10 until the first success, then bisection.
"""

from __future__ import annotations

import math

import numpy as np

from ...losses import Loss
from ...ops import T
from ..common import eot_loss_grad, where_rows
from ..oracle import Oracle
from ..registry import AttackKind, Word, register_attack
from ..specs import AttackSpec


def cw(steps: int = 1000, c: float = 1.0, kappa: float = 0.0, lr: float = 0.01, search_steps: int = 1,
       eps: float = math.inf, eot: int = 1) -> AttackSpec:
    """CW-L2. The papers ran torchattacks 3.2.6 with 1000 steps, lr 0.01 and its default c = 1e-4, which leaves
    the images almost unchanged; rna-core defaults to c = 1 and offers a binary search over c."""
    return AttackSpec("cw", eps=eps, steps=steps, c=c, kappa=kappa, lr=lr, search_steps=search_steps,
                      random_start=False, norm="l2", eot=eot)


def cw_run(oracle: Oracle, x: T, y: T, spec: AttackSpec, c: T) -> tuple[T, T]:
    """One CW-L2 optimisation with per-example constants ``c``: (best adversarial, its squared L2 or inf)."""
    ops = oracle.ops
    axes = tuple(range(1, x.ndim))
    loss = Loss("cw", spec.kappa)
    w = ops.atanh(ops.clip(x * 2 - 1, -1.0, 1.0))
    m, v = x * 0.0, x * 0.0  # (w is infinite where x is 0 or 1)
    best, best_l2 = x, ops.tensor(np.full(x.shape[0], math.inf, np.float32))
    prev = math.inf
    for step in range(spec.steps):
        adv = ops.sigmoid(2 * w)
        l2 = ops.sum((adv - x) ** 2, axes)
        margin, logits, g_margin = eot_loss_grad(oracle, loss, adv, y, c, spec.eot)
        check = step % max(spec.steps // 10, 1) == 0
        cost = float(ops.numpy(ops.sum(l2 + margin, 0))) if check else None
        grad = (2 * (adv - x) + g_margin) * (2 * adv * (1 - adv))
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        k = step + 1
        w = w - spec.lr / (1 - 0.9**k) * m / (ops.sqrt(v) / math.sqrt(1 - 0.999**k) + 1e-8)
        better = (ops.argmax(logits, 1) != y) & (l2 < best_l2)
        best_l2 = ops.where(better, l2, best_l2)
        best = where_rows(ops, better, adv, best)
        if cost is not None:
            if cost > prev:
                break
            prev = cost
    return best, best_l2


def run_cw(oracle: Oracle, x: T, y: T, spec: AttackSpec, rng: np.random.Generator | None = None) -> T:
    """CW with ``search_steps`` runs of the binary search over c (``rng`` unused: CW draws no random number)."""
    ops = oracle.ops
    n = x.shape[0]
    c = ops.tensor(np.full(n, spec.c, np.float32))
    inf = ops.tensor(np.full(n, math.inf, np.float32))
    lo, hi = c * 0.0, inf
    best, best_l2 = x, inf
    for _ in range(spec.search_steps):
        adv, l2 = cw_run(oracle, x, y, spec, c)
        ok = l2 < math.inf
        take = ok & (l2 < best_l2)
        best = where_rows(ops, take, adv, best)
        best_l2 = ops.where(take, l2, best_l2)
        hi = ops.where(ok, ops.clip(hi, None, c), hi)  # min(hi, c) where c succeeded
        lo = ops.where(ok, lo, ops.clip(lo, c, None))  # max(lo, c) where it failed
        c = ops.where(hi < math.inf, (lo + hi) / 2, c * 10)
    return best


register_attack(AttackKind("cw", run_cw, lambda s: "CW", minimum_norm=True,
                           cost=lambda s: s.steps * s.eot * s.search_steps,
                           examples={"cw": lambda: cw(10, c=10.0, lr=0.05),
                                     "cw-search": lambda: cw(20, search_steps=2)}),
                Word("cw", lambda eps, n: [cw(n or 1000)], "CW-L2 (n = 1000 steps)"))
