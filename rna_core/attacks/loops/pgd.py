"""FGSM, PGD (L-inf and L2) and MIFGSM, step for step as torchattacks 3.5.1.

- FGSM: x' = clip(x + eps sign(g), 0, 1), g = d CE / dx (Goodfellow et al. 2015);
- PGD: x_{t+1} = P(x_t + alpha sign(g)) in L-inf, or P(x_t + alpha g / (||g||_2 + 1e-10)) in L2, from
  x + delta_0 (Madry et al. 2018; starts in ``schedules.random_start``); with ``early_stop`` (the RNA
  supplement's Table 3, labelled PGD-n-ES: a weak setting kept to reproduce it) an example whose iterate the
  attacked draw misclassifies is not moved again;
- MIFGSM: m_{t+1} = decay m_t + g / mean|g|, x_{t+1} = P_inf(x_t + alpha sign(m_{t+1})) (Dong et al. 2018).
A targeted attack descends CE towards its target instead (``common.ce_ascent``). g is the gradient of the
batch-mean CE, torchattacks' convention: it equals the per-example gradient / N except where float32 cancels
(p_y within rounding of 1), and there the two conventions pick different but equally arbitrary directions, so
the mean is kept for reproducibility. Every gradient is averaged over ``spec.eot`` draws.
"""

from __future__ import annotations

import numpy as np

from ...losses import CE_MEAN
from ...ops import T
from ..common import ce_ascent, eot_loss_grad, per_example, project, where_rows
from ..oracle import Oracle
from ..registry import AttackKind, Word, register_attack
from ..schedules import random_start, random_targets
from ..specs import AttackSpec


def fgsm(eps: float = 8 / 255) -> AttackSpec:
    return AttackSpec("fgsm", eps=eps, alpha=eps, steps=1, random_start=False)


def pgd(steps: int = 20, eps: float = 8 / 255, alpha: float = 2 / 255, eot: int = 1, norm: str = "linf",
        restarts: int = 1, early_stop: bool = False) -> AttackSpec:
    """PGD with random start; the papers' PGD-20 is pgd(20, 8/255, 2/255). ``early_stop``: the RNA supplement's
    weak variant (its Table 3), where an example stops at the first iterate the attacked draw misclassifies."""
    return AttackSpec("pgd", eps=eps, alpha=alpha, steps=steps, norm=norm, eot=eot, restarts=restarts,
                      early_stop=early_stop)


def mifgsm(steps: int = 5, eps: float = 8 / 255, alpha: float = 2 / 255, decay: float = 1.0, eot: int = 1):
    return AttackSpec("mifgsm", eps=eps, alpha=alpha, steps=steps, decay=decay, random_start=False, eot=eot)


def targets(oracle: Oracle, y: T, spec: AttackSpec, rng: np.random.Generator) -> T | None:
    """A random other class per example for a targeted spec (``schedules.random_targets``), else None."""
    if not spec.targeted:
        return None
    return oracle.ops.tensor(random_targets(oracle.ops.numpy(y), oracle.num_classes, rng))


def fgsm_from(oracle: Oracle, x: T, y: T, spec: AttackSpec, target: T | None = None) -> T:
    ops = oracle.ops
    return ops.clip(x + spec.eps * ops.sign(ce_ascent(oracle, x, y, target, spec.eot)), 0.0, 1.0)


def pgd_from(oracle: Oracle, x: T, y: T, spec: AttackSpec, delta0: T, target: T | None = None) -> T:
    """PGD from x + ``delta0`` (a start drawn elsewhere: tests feed the start another implementation drew). With
    ``early_stop`` an example stops for good at the first iterate the attacked draw misclassifies (``stopping``)."""
    ops = oracle.ops
    adv = ops.clip(x + delta0, 0.0, 1.0)
    stopped = None
    for _ in range(spec.steps):
        if spec.early_stop:
            g, stopped = stopping(oracle, adv, y, target, spec.eot, stopped)
        else:
            g = ce_ascent(oracle, adv, y, target, spec.eot)
        if spec.norm == "linf":
            step = adv + spec.alpha * ops.sign(g)
        else:
            step = adv + spec.alpha * (g / per_example(ops.l2(g) + 1e-10, g))
        step = project(ops, x, step, spec)
        adv = step if stopped is None else where_rows(ops, stopped, adv, step)
    return adv


def stopping(oracle: Oracle, adv: T, y: T, target: T | None, eot: int, stopped: T | None) -> tuple[T, T]:
    """(the ascent direction at ``adv``, the examples stopped so far): an example stops once the logits of the
    attacked draw (averaged over ``eot`` draws) at its current iterate give another class than ``y`` (a target:
    the target). One forward gives both: the RNA supplement's early-stopping PGD, whose 20 steps are a maximum."""
    ops = oracle.ops
    labels, sign = (y, 1.0) if target is None else (target, -1.0)
    _, logits, g = eot_loss_grad(oracle, CE_MEAN, adv, labels, labels, eot)
    done = ops.argmax(logits, 1) != y if target is None else ops.argmax(logits, 1) == target
    return sign * g, done if stopped is None else stopped | done


def mifgsm_from(oracle: Oracle, x: T, y: T, spec: AttackSpec, target: T | None = None) -> T:
    ops = oracle.ops
    axes = tuple(range(1, x.ndim))
    linf = spec.replace(norm="linf")
    momentum, adv = x * 0.0, x
    for _ in range(spec.steps):
        g = ce_ascent(oracle, adv, y, target, spec.eot)
        momentum = g / per_example(ops.mean(ops.abs(g), axes), g) + momentum * spec.decay
        adv = project(ops, x, adv + spec.alpha * ops.sign(momentum), linf)
    return adv


def run_fgsm(oracle: Oracle, x: T, y: T, spec: AttackSpec, rng: np.random.Generator) -> T:
    return fgsm_from(oracle, x, y, spec, targets(oracle, y, spec, rng))


def run_pgd(oracle: Oracle, x: T, y: T, spec: AttackSpec, rng: np.random.Generator) -> T:
    target = targets(oracle, y, spec, rng)
    return pgd_from(oracle, x, y, spec, oracle.ops.tensor(random_start(spec, tuple(x.shape), rng)), target)


def run_mifgsm(oracle: Oracle, x: T, y: T, spec: AttackSpec, rng: np.random.Generator) -> T:
    return mifgsm_from(oracle, x, y, spec, targets(oracle, y, spec, rng))


register_attack(AttackKind("fgsm", run_fgsm, lambda s: "FGSM", targetable=True,
                           examples={"fgsm": lambda: fgsm(8 / 255)}),
                Word("fgsm", lambda eps, n: [fgsm(eps)], "FGSM", counted=False))
register_attack(AttackKind("pgd", run_pgd, lambda s: ("PGD-" if s.norm == "linf" else "PGD-L2-") + str(s.steps)
                           + ("-ES" if s.early_stop else ""),
                           targetable=True, random_start=True,
                           examples={"pgd": lambda: pgd(5, 8 / 255, 2 / 255),
                                     "pgd-targeted": lambda: pgd(5, 16 / 255, 4 / 255).replace(targeted=True),
                                     "pgd-l2": lambda: pgd(5, 0.5, 0.2, norm="l2"),
                                     "pgd-restarts": lambda: pgd(3, 8 / 255, 2 / 255, restarts=2),
                                     "pgd-early-stop": lambda: pgd(5, 8 / 255, 2 / 255, early_stop=True)}),
                Word("pgd", lambda eps, n: [pgd(n or 20, eps, eps / 4)], "PGD-n (L-inf, step eps/4; n = 20)"),
                Word("pgdl2", lambda eps, n: [pgd(n or 20, 0.5, 0.1, norm="l2")], "PGD-L2-n (eps 0.5; n = 20)"),
                Word("pgd-es", lambda eps, n: [pgd(n or 20, eps, eps / 4, early_stop=True)],
                     "PGD-n-ES: the RNA supplement's early-stopping PGD, weak by design (n = 20)"))
register_attack(AttackKind("mifgsm", run_mifgsm, lambda s: "MIFGSM", targetable=True,
                           examples={"mifgsm": lambda: mifgsm(5, 8 / 255, 2 / 255)}),
                Word("mifgsm", lambda eps, n: [mifgsm(n or 5, eps, eps / 4)], "MIFGSM (n = 5 steps, decay 1)"))
