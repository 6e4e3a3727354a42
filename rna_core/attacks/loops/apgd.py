"""APGD (Croce & Hein 2020, Alg. 1) with the CE, DLR or targeted DLR loss, and APGD-T.

Step eta = 2 eps, momentum 0.75: z = P(x_t + eta d(g)), x_{t+1} = P(x_t + a (z - x_t) + (1 - a)(x_t - x_{t-1}))
(a = 1 on the first step), d = sign (L-inf) or g / ||g||_2 (L2). At each checkpoint (``schedules.apgd_checkpoints``)
an example's step is halved, and its iterate reset to its best point, if at most rho of the steps since the last
checkpoint raised its loss, or if its step was not halved last time and its best loss did not improve.

Randomized models (``eot`` > 1): the gradient, the loss that drives the step-size and checkpoint decisions and
the loss that picks the best point are all averaged over ``eot`` fresh draws, and the attack returns each example's
highest mean-loss point: "fooled one draw" is an accident of that draw, not a property of the point. With
``eot`` = 1 (a deterministic model, or a held draw) it returns the first point that fooled the model, else the
highest-loss point, as AutoAttack does.
"""

from __future__ import annotations

import numpy as np

from ...losses import CE, DLR, DLR_TARGETED, Loss
from ...ops import T
from ..common import eot_logits, eot_loss_grad, per_example, project, where_rows
from ..oracle import Oracle
from ..registry import AttackKind, Word, register_attack
from ..schedules import apgd_checkpoints, random_start
from ..specs import AttackSpec


def apgd(loss: str = "ce", steps: int = 100, eps: float = 8 / 255, eot: int = 1, norm: str = "linf",
         restarts: int = 1) -> AttackSpec:
    return AttackSpec(f"apgd-{loss}", eps=eps, steps=steps, eot=eot, norm=norm, restarts=restarts)


def apgd_t(steps: int = 100, eps: float = 8 / 255, n_targets: int = 9, eot: int = 1) -> AttackSpec:
    return AttackSpec("apgd-t", eps=eps, steps=steps, n_targets=n_targets, eot=eot)


def apgd_from(oracle: Oracle, x: T, y: T, spec: AttackSpec, delta0: T, loss: Loss, w: T | None = None) -> T:
    """APGD from x + ``delta0`` on ``loss`` (``w``: the target of ``dlr-t``)."""
    ops = oracle.ops
    w = y if w is None else w

    def direction(g: T) -> T:
        return ops.sign(g) if spec.norm == "linf" else g / per_example(ops.l2(g) + 1e-12, g)

    adv = ops.clip(x + delta0, 0.0, 1.0)
    per, logits, grad = eot_loss_grad(oracle, loss, adv, y, w, spec.eot)
    fooled = ops.argmax(logits, 1) != y
    out, x_best, grad_best, loss_best = adv, adv, grad, per
    eta = per_example(ops.tensor(np.full(x.shape[0], 2 * spec.eps, np.float32)), x)
    prev = adv
    history = [per]
    checkpoints = set(apgd_checkpoints(spec.steps))
    last_check = 0
    loss_best_last = loss_best
    reduced_last = ops.tensor(np.ones(x.shape[0], bool))
    for i in range(spec.steps):
        a = 0.75 if i > 0 else 1.0
        z = project(ops, x, adv + eta * direction(grad), spec)
        prev, adv = adv, project(ops, x, adv + a * (z - adv) + (1 - a) * (adv - prev), spec)
        per, logits, grad = eot_loss_grad(oracle, loss, adv, y, w, spec.eot)
        history.append(per)
        new_fool = (ops.argmax(logits, 1) != y) & ~fooled
        out = where_rows(ops, new_fool, adv, out)
        fooled = fooled | new_fool
        up = per > loss_best
        x_best, grad_best = where_rows(ops, up, adv, x_best), where_rows(ops, up, grad, grad_best)
        loss_best = ops.where(up, per, loss_best)
        if i + 1 in checkpoints:
            raised = sum(ops.where(history[j + 1] > history[j], 1.0, 0.0) for j in range(last_check, i + 1))
            halve = (raised <= spec.rho * (i + 1 - last_check)) | (~reduced_last & (loss_best_last >= loss_best))
            eta = where_rows(ops, halve, eta / 2, eta)
            adv, grad = where_rows(ops, halve, x_best, adv), where_rows(ops, halve, grad_best, grad)
            reduced_last, loss_best_last, last_check = halve, loss_best, i + 1
    return where_rows(ops, fooled, out, x_best) if spec.eot == 1 else x_best


def run_apgd(oracle: Oracle, x: T, y: T, spec: AttackSpec, rng: np.random.Generator) -> T:
    """APGD-CE or APGD-DLR from its random start."""
    start = oracle.ops.tensor(random_start(spec, tuple(x.shape), rng))
    return apgd_from(oracle, x, y, spec, start, CE if spec.name == "apgd-ce" else DLR)


def run_apgd_targeted(oracle: Oracle, x: T, y: T, spec: AttackSpec, rng: np.random.Generator) -> T:
    """APGD-T: one run per target, the t-th highest-scoring class for t = 2 .. n_targets + 1 (AutoAttack), on the
    examples no earlier target fooled; scores and the fooled test use the logits averaged over ``eot`` draws."""
    ops = oracle.ops
    order = ops.sort(eot_logits(oracle, x, spec.eot), 1)[1]
    out, todo = x, ops.tensor(np.ones(x.shape[0], bool))
    for t in range(2, min(spec.n_targets + 2, order.shape[1] + 1)):
        idx = ops.nonzero(todo)
        if idx.shape[0] == 0:
            break
        xi, yi = ops.gather(x, idx), ops.gather(y, idx)
        start = ops.tensor(random_start(spec, tuple(xi.shape), rng))
        adv = apgd_from(oracle, xi, yi, spec, start, DLR_TARGETED, ops.gather(order[:, -t], idx))
        fooled = ops.argmax(eot_logits(oracle, adv, spec.eot), 1) != yi
        out = ops.scatter(out, idx, adv)
        todo = ops.scatter(todo, idx, ~fooled)
    return out


for _loss in ("ce", "dlr"):
    register_attack(AttackKind(f"apgd-{_loss}", run_apgd, lambda s: s.name.upper(), random_start=True,
                               examples={f"apgd-{_loss}": lambda loss=_loss: apgd(loss, 10)}),
                    Word(f"apgd-{_loss}", lambda eps, n, loss=_loss: [apgd(loss, n or 100, eps)],
                         f"APGD-{_loss.upper()} (n = 100 iterations)"))
register_attack(AttackKind("apgd-t", run_apgd_targeted, lambda s: "APGD-T", random_start=True,
                           cost=lambda s: s.steps * s.eot * s.n_targets,
                           examples={"apgd-t": lambda: apgd_t(5, n_targets=2)}),
                Word("apgd-t", lambda eps, n: [apgd_t(n or 100, eps)], "APGD-T (n = 100 iterations, 9 targets)"))
