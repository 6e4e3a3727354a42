"""Pieces every attack loop shares: per-example views, the eps-ball projection and EOT averages."""

from __future__ import annotations

from ..losses import CE_MEAN, Loss
from ..ops import Ops, T
from .oracle import Oracle
from .specs import AttackSpec


def per_example(t: T, like: T) -> T:
    """An (N,) tensor viewed as (N, 1, 1, ...) to broadcast against ``like``."""
    return t.reshape((-1,) + (1,) * (like.ndim - 1))


def where_rows(ops: Ops, mask: T, a: T, b: T) -> T:
    """Row n of a where the (N,) ``mask`` holds, else row n of b."""
    return ops.where(per_example(mask, a), a, b)


def project(ops: Ops, x: T, adv: T, spec: AttackSpec) -> T:
    """P(adv): the eps-ball around x in ``spec.norm`` (L-inf: clip; L2: scale delta by min(1, eps / ||delta||)),
    then [0, 1]."""
    delta = adv - x
    if spec.norm == "linf":
        delta = ops.clip(delta, -spec.eps, spec.eps)
    else:
        delta = delta * per_example(ops.clip(spec.eps / ops.l2(delta), None, 1.0), x)
    return ops.clip(x + delta, 0.0, 1.0)


def eot_loss_grad(oracle: Oracle, loss: Loss, x: T, y: T, w: T, eot: int) -> tuple[T, T, T]:
    """(per-example loss, logits, input gradient), each averaged over ``eot`` forwards on fresh draws."""
    per, logits, grad = oracle.loss_grad(loss, x, y, w, oracle.draw())
    for _ in range(eot - 1):
        p, z, g = oracle.loss_grad(loss, x, y, w, oracle.draw())
        per, logits, grad = per + p, logits + z, grad + g
    if eot > 1:
        per, logits, grad = per / eot, logits / eot, grad / eot
    return per, logits, grad


def eot_logits(oracle: Oracle, x: T, eot: int) -> T:
    """Logits averaged over ``eot`` forwards on fresh draws."""
    z = oracle.logits(x, oracle.draw())
    for _ in range(eot - 1):
        z = z + oracle.logits(x, oracle.draw())
    return z / eot if eot > 1 else z


def ce_ascent(oracle: Oracle, x: T, y: T, target: T | None, eot: int) -> T:
    """The input gradient an untargeted attack ascends, d mean CE(z, y) / dx, or for a target t,
    -d mean CE(z, t) / dx (it descends the target's loss); averaged over ``eot`` draws."""
    if target is None:
        return eot_loss_grad(oracle, CE_MEAN, x, y, y, eot)[2]
    return -eot_loss_grad(oracle, CE_MEAN, x, target, target, eot)[2]
