"""``trades``: TRADES (Zhang et al. 2019), W <- W - lr grad_W [CE(h(x), y) + beta KL(softmax h(x) || softmax h(x'))]
(batch means), x' the maximiser of KL(softmax h(x) || softmax h(x')) over the eps-ball: from x + 0.001 N(0, 1)
(the authors' start, drawn from the attack stream), ``train_attack.steps`` steps of x' <- P(x' + alpha sign(grad_x'
KL)) with its eps and alpha (the reference logits h(x) held fixed during the attack, as the authors detach them;
in the update the gradient flows through both forwards, as theirs does). ``trades_beta``: beta (6, the paper's
CIFAR value). On a randomized model the attack runs on one held draw and the update's two forwards on one fresh
draw (black-box adversarial training's scheme; a deterministic model has one draw). The loss of two forwards is
the registered loss ``trades`` (its float64 reference below). MindSpore's GRAPH_MODE cannot differentiate a loss of
two forwards of an RNA model: use PyNative there (the backend refuses it by name)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..attacks import Oracle
from ..attacks.common import project
from ..losses import KL, Loss, LossKind, _cross_entropy_ref, _kl_ref, cross_entropy, kl_divergence, register_loss
from ..ops import Ops, T
from ..validation import check_range, check_types
from .base import Method, Step, StepResult, register_method


@dataclass(frozen=True)
class TradesOptions:
    section: ClassVar[str] = "trades"
    trades_beta: float = 6.0

    def __post_init__(self) -> None:
        check_types(self, "recipe key")
        check_range("recipe key", "trades_beta", self.trades_beta, 0)


def trades_loss(ops: Ops, z: tuple[T, T], y: T, w: T, kappa: float) -> T:
    """Per example CE(z_clean, y) + kappa KL(softmax z_clean || softmax z_adv), z = (z_clean, z_adv)."""
    return cross_entropy(ops, z[0], y, w, 0.0) + kappa * kl_divergence(ops, z[1], y, z[0], 0.0)


def _trades_reference(z: np.ndarray, y: np.ndarray, w: np.ndarray, kappa: float) -> np.ndarray:
    return _cross_entropy_ref(z[0], y, w, 0.0) + kappa * _kl_ref(z[1], y, z[0], 0.0)


register_loss(LossKind("trades", trades_loss, _trades_reference))


def kl_attack(step: Step, x: np.ndarray, y: np.ndarray) -> T:
    """TRADES' inner maximisation on the controller's current (held) draw; the reference logits from it."""
    spec, ops = step.recipe.train_attack, step.ops
    step.clf.model.set_train(step.recipe.attack_in_train_mode)
    oracle = Oracle(step.backend, step.clf.model)
    xb, yb = step.tensor(x), step.tensor(y)
    clean = oracle.logits(xb, oracle.draw())
    adv = xb + ops.tensor((0.001 * step.rng.standard_normal(x.shape)).astype(np.float32))
    for _ in range(spec.steps):
        _, _, g = oracle.loss_grad(KL, adv, yb, clean, oracle.draw())
        adv = project(ops, xb, adv + spec.alpha * ops.sign(g), spec)
    return adv


def trades(step: Step, x: np.ndarray, y: np.ndarray) -> StepResult:
    with step.frozen():  # the attack's draw
        adv = kl_attack(step, x, y)
    with step.frozen():  # the update's: both forwards on it
        grad = step.gradient(Loss("trades", kappa=step.recipe.trades_beta, mean=True), (step.tensor(x), adv), y)
        step.update([(1.0, grad)])
    return step.result(grad, y)


register_method(Method("trades", trades, adversarial=True, options=(TradesOptions,),
                       passes=lambda r: r.train_attack.steps + 2))  # the KL attack's steps, then two forwards
