"""The compiled functions of one MindSpore Network, each built on first use and kept on the model.

In GRAPH_MODE every program is an ``ms.jit`` function compiled once for every draw (the draw is tensor data), so
a model compiles a handful of graphs whatever the path; in PyNative the same Python functions run eagerly, except
the optimizer update (``apply``), compiled in both modes: eagerly it launches a handful of kernels per parameter.
Programs: ``forward``, ``train_step(optimizer)``, ``apply(optimizer)`` (a step with a given gradient),
``loss_grad(loss)`` (the attacks' per-example loss and input gradient), ``perturbed_forward(groups, track)`` and
``perturbed_grad(groups, track)`` (APART's Eq. 3 passes; groups and track are compile-time constants).
The attack losses (``LOSSES``, the formulas of ``rna_core.attacks.seams.Loss``) run inside ``loss_grad``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import mindspore as ms
from mindspore import Tensor, nn, ops

from rna_core.attacks import Loss

if TYPE_CHECKING:
    from .network import Network
    from .optimizer import MaskedSGD


def _pick(z: Tensor, idx: Tensor) -> Tensor:
    return ops.gather_elements(z, 1, idx.reshape(-1, 1)).reshape(-1)


def _dlr(z: Tensor, y: Tensor, w: Tensor, kappa: float) -> Tensor:
    s = ops.sort(z, axis=1)[0]
    top_is_y = (z.argmax(1) == y).astype(z.dtype)
    return -(_pick(z, y) - s[:, -2] * top_is_y - s[:, -1] * (1 - top_is_y)) / (s[:, -1] - s[:, -3] + 1e-12)


def _dlr_targeted(z: Tensor, y: Tensor, w: Tensor, kappa: float) -> Tensor:
    s = ops.sort(z, axis=1)[0]
    return -(_pick(z, y) - _pick(z, w)) / (s[:, -1] - 0.5 * (s[:, -3] + s[:, -4]) + 1e-12)


def _cw(z: Tensor, y: Tensor, w: Tensor, kappa: float) -> Tensor:
    onehot = ops.one_hot(y, z.shape[1], Tensor(1.0, z.dtype), Tensor(0.0, z.dtype))
    other = ((1 - onehot) * z).max(axis=1)
    real = (onehot * z).max(axis=1)
    return w * ops.clamp(real - other, min=-kappa)


def _ce(z: Tensor, y: Tensor, w: Tensor, kappa: float) -> Tensor:
    return ops.cross_entropy(z, y, reduction="none")


def _weighted_logits(z: Tensor, y: Tensor, w: Tensor, kappa: float) -> Tensor:
    return (z * w).sum(axis=1)


# named functions, not lambdas: GRAPH_MODE compiles from the source
LOSSES: dict[str, Callable[[Tensor, Tensor, Tensor, float], Tensor]] = {
    "ce": _ce, "dlr": _dlr, "dlr-t": _dlr_targeted, "cw": _cw, "logits": _weighted_logits}


class Programs:
    def __init__(self, model: Network, graph_mode: bool, world_size: int) -> None:
        self.model, self.graph_mode, self.world_size = model, graph_mode, world_size
        self.built: dict[tuple, Callable] = {}

    def _once(self, key: tuple, build: Callable[[], Callable], compile_always: bool = False) -> Callable:
        if key not in self.built:
            fn = build()
            self.built[key] = ms.jit(fn) if self.graph_mode or compile_always else fn
        return self.built[key]

    def _reducer(self, params) -> Callable:
        """Identity in one process; the mean over ranks of every gradient in a data-parallel world."""
        if self.world_size == 1:
            return lambda grads: grads
        return nn.DistributedGradReducer(params, mean=True, degree=self.world_size)

    def forward(self) -> Callable:
        """(x, draw) -> logits."""
        model = self.model

        def build():
            def forward(x, draw):
                return model(x, draw)

            return forward

        return self._once(("forward",), build)

    def train_step(self, optimizer: MaskedSGD) -> Callable:
        """(x, y, draw, mask) -> (mean CE, logits), one optimizer step on the (all-reduced) gradient of the
        parameters with mask 1."""
        model = self.model

        def build():
            scale = model.loss_scale  # mixed precision: a static loss scale (1 in float32)

            def loss_fn(x, y, draw):
                logits = model(x, draw)
                return ops.cross_entropy(logits, y) * scale, logits

            grad_fn = ms.value_and_grad(loss_fn, None, optimizer.params, has_aux=True)
            reduce = self._reducer(optimizer.params)
            update = optimizer if self.graph_mode else self._eager_update(optimizer)

            def step(x, y, draw, mask):
                (loss, logits), grads = grad_fn(x, y, draw)
                if scale != 1.0:
                    grads = tuple(g / scale for g in grads)
                    loss = loss / scale
                update(reduce(grads), mask)
                return loss, logits

            return step

        return self._once(("train", optimizer), build)

    def _eager_update(self, optimizer: MaskedSGD) -> Callable:
        """PyNative: the compiled ``apply``, its gradients passed as data (``ms.mutable``), not constants."""
        apply = self.apply(optimizer)

        def update(grads, mask):
            return apply(ms.mutable(tuple(grads)), mask)

        return update

    def apply(self, optimizer: MaskedSGD) -> Callable:
        """(grads, mask) -> one optimizer step with those gradients on the parameters with mask 1 (compiled in
        both modes)."""

        def build():
            def apply(grads, mask):
                return optimizer(grads, mask)

            return apply

        return self._once(("apply", optimizer), build, compile_always=True)

    def loss_grad(self, loss: Loss) -> Callable:
        """(x, y, w, draw) -> ((reduced loss, per-example loss, logits), d reduced loss / dx): sum, or mean if
        ``loss.mean``."""
        model, per_example, kappa, mean = self.model, LOSSES[loss.name], loss.kappa, loss.mean

        def build():
            scale = model.loss_scale  # fp16: the input gradient of the scaled loss, unscaled below

            def input_loss(x, y, w, draw):
                logits = model(x, draw)
                per = per_example(logits, y, w, kappa)
                return (per.mean() if mean else per.sum()) * scale, per, logits

            grad_fn = ms.value_and_grad(input_loss, 0, None, has_aux=True)
            if scale == 1.0:
                return grad_fn

            def unscaled(x, y, w, draw):
                (total, per, logits), grad = grad_fn(x, y, w, draw)
                return (total / scale, per, logits), grad / scale

            return unscaled

        return self._once(("loss", loss), build)

    def perturbed_forward(self, groups: int, track: bool) -> Callable:
        """(x, draw, delta) -> logits with every BN layer running Eq. 3 (``groups`` groups, tracking iff
        ``track``)."""
        model = self.model

        def build():
            def forward(x, draw, delta):
                return model(x, (draw[0], draw[1], delta, groups, track))

            return forward

        return self._once(("perturbed_forward", groups, track), build)

    def perturbed_grad(self, groups: int, track: bool) -> Callable:
        """(x, y, draw, delta) -> ((mean CE, logits), (d / d delta, d / d params)), gradients all-reduced in a
        data-parallel world."""
        model = self.model

        def build():
            def loss_fn(x, y, draw, delta):
                logits = model(x, (draw[0], draw[1], delta, groups, track))
                return ops.cross_entropy(logits, y), logits

            grad_fn = ms.value_and_grad(loss_fn, 3, model.trainable_params(), has_aux=True)
            if self.world_size == 1:
                return grad_fn
            reduce, size, mean_delta = self._reducer(model.trainable_params()), self.world_size, ops.AllReduce()

            def reduced(x, y, draw, delta):
                out, (g_delta, grads) = grad_fn(x, y, draw, delta)
                return out, (mean_delta(g_delta) / size, reduce(grads))

            return reduced

        return self._once(("perturbed_grad", groups, track), build)

