"""Native MindSpore attacks (formulas in ``rna_core.attacks``), the same update rules as the torch backend.

``grad_fn(x, y)`` is the backend's input gradient of the summed cross-entropy on one forward (one draw of
the path); every gradient is averaged over ``spec.eot`` such forwards. Random starts and targets come from
the core's numpy Generator. FGSM, PGD (L-inf, L2) and MIFGSM are ported; the others raise
NotImplementedError through the backend.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from mindspore import Tensor, ops

from rna_core.attacks import AttackSpec, random_targets

GradFn = Callable[[Tensor, Tensor], Tensor]
PORTED = ("fgsm", "pgd", "mifgsm")


def _grad(grad_fn: GradFn, x: Tensor, y: Tensor, eot: int, target: Tensor | None) -> Tensor:
    """Gradient of the attack loss: CE(y) untargeted, -CE(target) targeted, averaged over ``eot`` forwards."""
    total = None
    for _ in range(eot):
        g = grad_fn(x, y) if target is None else -grad_fn(x, target)
        total = g if total is None else total + g
    return total / eot


def _view(x: Tensor) -> tuple[int, ...]:
    return (-1,) + (1,) * (x.ndim - 1)


def _l2(v: Tensor) -> Tensor:
    return ops.norm(v.reshape(v.shape[0], -1), dim=1)


def fgsm(grad_fn: GradFn, x: Tensor, y: Tensor, spec: AttackSpec, target=None) -> Tensor:
    return ops.clamp(x + spec.eps * ops.sign(_grad(grad_fn, x, y, spec.eot, target)), 0, 1)


def pgd_from(grad_fn: GradFn, x: Tensor, y: Tensor, spec: AttackSpec, delta0: Tensor, target=None) -> Tensor:
    adv = ops.clamp(x + delta0, 0, 1)
    for _ in range(spec.steps):
        grad = _grad(grad_fn, adv, y, spec.eot, target)
        if spec.norm == "linf":
            adv = adv + spec.alpha * ops.sign(grad)
            delta = ops.clamp(adv - x, -spec.eps, spec.eps)
        else:
            grad = grad / (_l2(grad) + 1e-10).reshape(_view(x))
            adv = adv + spec.alpha * grad
            delta = adv - x
            delta = delta * ops.clamp(spec.eps / _l2(delta), max=1.0).reshape(_view(x))
        adv = ops.clamp(x + delta, 0, 1)
    return adv


def mifgsm(grad_fn: GradFn, x: Tensor, y: Tensor, spec: AttackSpec, target=None) -> Tensor:
    momentum = ops.zeros_like(x)
    adv = x
    axes = tuple(range(1, x.ndim))
    for _ in range(spec.steps):
        grad = _grad(grad_fn, adv, y, spec.eot, target)
        grad = grad / ops.abs(grad).mean(axis=axes, keep_dims=True)
        momentum = grad + momentum * spec.decay
        adv = adv + spec.alpha * ops.sign(momentum)
        adv = ops.clamp(x + ops.clamp(adv - x, -spec.eps, spec.eps), 0, 1)
    return adv


def run(grad_fn: GradFn, num_classes: int, x: Tensor, y: Tensor, spec: AttackSpec,
        rng: np.random.Generator) -> Tensor:
    target = None
    if spec.targeted:
        target = Tensor(random_targets(y.asnumpy(), num_classes, rng).astype(np.int32))
    if spec.name == "fgsm":
        return fgsm(grad_fn, x, y, spec, target)
    if spec.name == "pgd":
        return pgd_from(grad_fn, x, y, spec, Tensor(spec.random_start_for(x.asnumpy(), rng)), target)
    return mifgsm(grad_fn, x, y, spec, target)
