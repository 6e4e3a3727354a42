"""FGSM, PGD (L-inf and L2) and MIFGSM, step for step as torchattacks 3.5.1.

- FGSM: x' = clip(x + eps sign(g), 0, 1), g = d CE / dx (Goodfellow et al. 2015);
- PGD: x_{t+1} = P(x_t + alpha sign(g)) in L-inf, or P(x_t + alpha g / (||g||_2 + 1e-10)) in L2, from
  x + delta_0 (Madry et al. 2018; starts in ``schedules.random_start``);
- MIFGSM: m_{t+1} = decay m_t + g / mean|g|, x_{t+1} = P_inf(x_t + alpha sign(m_{t+1})) (Dong et al. 2018).
A targeted attack descends CE towards its target instead (``common.ce_ascent``). g is the gradient of the
batch-mean CE, torchattacks' convention: it equals the per-example gradient / N except where float32 cancels
(p_y within rounding of 1), and there the two conventions pick different but equally arbitrary directions, so
the mean is kept for reproducibility. Every gradient is averaged over ``spec.eot`` draws.
"""

from __future__ import annotations

from ...ops import T
from ..common import ce_ascent, per_example, project
from ..oracle import Oracle
from ..specs import AttackSpec


def fgsm(oracle: Oracle, x: T, y: T, spec: AttackSpec, target: T | None = None) -> T:
    ops = oracle.ops
    return ops.clip(x + spec.eps * ops.sign(ce_ascent(oracle, x, y, target, spec.eot)), 0.0, 1.0)


def pgd_from(oracle: Oracle, x: T, y: T, spec: AttackSpec, delta0: T, target: T | None = None) -> T:
    """PGD from x + ``delta0`` (a start drawn elsewhere: tests feed the start another implementation drew)."""
    ops = oracle.ops
    adv = ops.clip(x + delta0, 0.0, 1.0)
    for _ in range(spec.steps):
        g = ce_ascent(oracle, adv, y, target, spec.eot)
        if spec.norm == "linf":
            adv = adv + spec.alpha * ops.sign(g)
        else:
            adv = adv + spec.alpha * (g / per_example(ops.l2(g) + 1e-10, g))
        adv = project(ops, x, adv, spec)
    return adv


def mifgsm(oracle: Oracle, x: T, y: T, spec: AttackSpec, target: T | None = None) -> T:
    ops = oracle.ops
    axes = tuple(range(1, x.ndim))
    linf = spec.replace(norm="linf")
    momentum, adv = x * 0.0, x
    for _ in range(spec.steps):
        g = ce_ascent(oracle, adv, y, target, spec.eot)
        momentum = g / per_example(ops.mean(ops.abs(g), axes), g) + momentum * spec.decay
        adv = project(ops, x, adv + spec.alpha * ops.sign(momentum), linf)
    return adv
