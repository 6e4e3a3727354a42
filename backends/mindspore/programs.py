"""The compiled functions of one MindSpore Network, each built on first use and kept on the model.

In GRAPH_MODE every program is an ``ms.jit`` function compiled once for every draw (the draw is Parameter data the
host writes before the call, ``Network.load``), so a model compiles a handful of graphs whatever the path; in
PyNative the same Python functions run eagerly, except the optimizer update (``apply``), compiled in both modes:
eagerly it launches a handful of kernels per parameter. Programs: ``forward``, ``value_and_grad(loss, wrt,
inputs, groups, track)`` (a core loss of the logits, ``rna_core.losses``, with its gradients; an APART pass's
groups and track are compile-time constants) and ``apply(optimizer)`` (a step with a given gradient).
"""

from __future__ import annotations

from collections.abc import Callable

import mindspore as ms
from mindspore import nn

from rna_core.backend import DELTA, INPUT, PARAMS
from rna_core.losses import Loss

from .ops import OPS
from .optimizer import MaskedSGD


class Programs:
    """The programs of ``model`` (a ``network.Network``)."""

    def __init__(self, model: nn.Cell, graph_mode: bool, world_size: int) -> None:
        self.model, self.graph_mode, self.world_size = model, graph_mode, world_size
        self.built: dict[tuple, Callable] = {}

    def _once(self, key: tuple, build: Callable[[], Callable], compile_always: bool = False) -> Callable:
        if key not in self.built:
            fn = build()
            self.built[key] = ms.jit(fn) if self.graph_mode or compile_always else fn
        return self.built[key]

    def forward(self) -> Callable:
        """x -> logits."""
        model = self.model

        def build():
            def forward(x):
                return model(x)

            return forward

        return self._once(("forward", model.state.groups, model.state.track), build)

    def weights(self, wrt: tuple[str, ...]) -> list:
        """The Parameters a ``value_and_grad`` program differentiates: the BN perturbation, then the trainable
        parameters."""
        model = self.model
        return ([model.state.delta] if DELTA in wrt else []) + (model.trainable_params() if PARAMS in wrt else [])

    def value_and_grad(self, loss: Loss, wrt: tuple[str, ...], inputs: int) -> Callable:
        """(*xs, y, w) -> ((loss, per-example loss, logits of xs[0]), gradients): the gradients with respect to the
        ``inputs`` inputs xs (if ``INPUT`` in ``wrt``; one tensor for one input, else a tuple), then those with
        respect to ``weights(wrt)`` (all-reduced in a data-parallel world). fp16: the gradients of the scaled loss,
        unscaled."""
        model, fn, kappa, mean = self.model, loss.fn, loss.kappa, loss.mean
        if inputs > 1 and self.graph_mode and model.switches:
            raise NotImplementedError(f"loss {loss.name!r} of {inputs} forwards: MindSpore's GRAPH_MODE autodiff fails "
                                      "on an RNA slot's switch called more than once in one graph; run it with "
                                      "mode='pynative', or on a model without random slots")

        def build():
            scale = model.loss_scale
            weights = self.weights(wrt) or None

            def objective(*args):
                zs = ()
                for i in range(inputs):
                    zs = zs + (model(args[i]),)  # noqa: RUF005 (GRAPH_MODE parses no starred tuple)
                per = fn(OPS, zs if inputs > 1 else zs[0], args[inputs], args[inputs + 1], kappa)
                total = per.mean() if mean else per.sum()
                return total * scale, per, zs[0]

            positions = tuple(range(inputs)) if INPUT in wrt else None
            grad_fn = ms.value_and_grad(objective, positions, weights, has_aux=True)
            reduce = self._reducer(weights) if weights and self.world_size > 1 else None

            def run(*args):
                (total, per, logits), grads = grad_fn(*args)
                if weights is not None and INPUT in wrt:
                    grads = (grads[0], reduce(grads[1]) if reduce is not None else grads[1])
                elif reduce is not None:
                    grads = reduce(grads)
                if scale != 1.0:
                    total, grads = total / scale, _unscaled(grads, scale)
                return (total, per, logits), grads

            return run

        return self._once(("value_and_grad", loss, wrt, inputs, model.state.groups, model.state.track), build)

    def _reducer(self, params) -> Callable:
        """The mean over ranks of every gradient in a data-parallel world."""
        return nn.DistributedGradReducer(params, mean=True, degree=self.world_size)

    def apply(self, optimizer: MaskedSGD) -> Callable:
        """(grads, mask) -> one optimizer step with those gradients on the parameters with mask 1 (compiled in
        both modes)."""

        def build():
            def apply(grads, mask):
                return optimizer(grads, mask)

            return apply

        return self._once(("apply", optimizer), build, compile_always=True)


def _unscaled(grads, scale: float):
    """``grads`` (a tensor or nested tuples of them) divided by ``scale``."""
    if isinstance(grads, tuple):
        return tuple(_unscaled(g, scale) for g in grads)
    return grads / scale
