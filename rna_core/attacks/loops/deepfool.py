"""DeepFool, L2 (Moosavi-Dezfooli et al. 2016), minimum-norm, batched but step for step as torchattacks.

An example still classified correctly moves by (1 + overshoot) |f'_l| w'_l / ||w'_l||_2^2 towards the nearest
linearised boundary l = argmin_{k != y} |f'_k| / ||w'_k||_2, with f'_k = z_k - z_y and w'_k = grad z_k - grad z_y,
then is clipped to [0, 1]; it stops once misclassified or after ``steps`` steps. Only the examples still active
are forwarded. With ``eot`` > 1 the logits and the Jacobian are averaged over that many draws (every row of one
Jacobian on the same draw).
"""

from __future__ import annotations

import math

import numpy as np

from ...ops import T
from ..common import per_example
from ..oracle import Oracle
from ..registry import AttackKind, Word, register_attack
from ..specs import AttackSpec


def deepfool(steps: int = 50, overshoot: float = 0.02, eps: float = math.inf, eot: int = 1) -> AttackSpec:
    return AttackSpec("deepfool", eps=eps, steps=steps, overshoot=overshoot, random_start=False, norm="l2", eot=eot)


def eot_jacobian(oracle: Oracle, x: T, y: T, eot: int) -> tuple[T, T]:
    """(logits, Jacobian (N, K, ...)) averaged over ``eot`` draws."""
    logits, jac = oracle.jacobian(x, y, oracle.draw())
    for _ in range(eot - 1):
        z, j = oracle.jacobian(x, y, oracle.draw())
        logits, jac = logits + z, jac + j
    return (logits / eot, jac / eot) if eot > 1 else (logits, jac)


def run_deepfool(oracle: Oracle, x: T, y: T, spec: AttackSpec, rng: np.random.Generator | None = None) -> T:
    """DeepFool (``rng`` unused: it draws no random number)."""
    ops, k = oracle.ops, oracle.num_classes
    adv = x
    active = ops.tensor(np.ones(x.shape[0], bool))
    for _ in range(spec.steps):
        idx = ops.nonzero(active)
        if idx.shape[0] == 0:
            break
        logits, jac = eot_jacobian(oracle, ops.gather(adv, idx), ops.gather(y, idx), spec.eot)
        yi = ops.gather(y, idx)
        fooled = ops.argmax(logits, 1) != yi
        active = ops.scatter(active, idx, ~fooled)
        keep = ops.nonzero(~fooled)
        if keep.shape[0] == 0:
            break
        idx, logits, jac, yi = (ops.gather(a, keep) for a in (idx, logits, jac, yi))
        image = (1,) * (jac.ndim - 2)
        onehot = ops.one_hot(yi, k, logits)
        f_prime = logits - ops.pick(logits, yi).reshape(-1, 1)                      # (n, K)
        w_prime = jac - ops.sum(jac * onehot.reshape(*onehot.shape, *image), 1).reshape(-1, 1, *jac.shape[2:])
        norms = ops.sqrt(ops.sum(w_prime * w_prime, tuple(range(2, jac.ndim))))     # (n, K)
        value = ops.where(onehot > 0, math.inf, ops.abs(f_prime) / norms)
        nearest = ops.argmax(-value, 1)
        w_l = ops.sum(w_prime * ops.one_hot(nearest, k, logits).reshape(*onehot.shape, *image), 1)
        step = per_example(ops.abs(ops.pick(f_prime, nearest)) / ops.pick(norms, nearest) ** 2, w_l) * w_l
        adv = ops.scatter(adv, idx, ops.clip(ops.gather(adv, idx) + (1 + spec.overshoot) * step, 0.0, 1.0))
    return adv


register_attack(AttackKind("deepfool", run_deepfool, lambda s: "DeepFool", minimum_norm=True,
                           examples={"deepfool": lambda: deepfool(8)}),
                Word("deepfool", lambda eps, n: [deepfool(n or 50)], "DeepFool-L2 (n = 50 steps, overshoot 0.02)"))
