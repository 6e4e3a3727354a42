"""The MindSpore implementation of ``rna_core.backend.Backend`` (PyNative, or GRAPH_MODE through ``ms.jit``).

On Ascend the operator precision mode is ``RNA_ASCEND_PRECISION_MODE`` (default ``must_keep_origin_dtype``: the
float32 the parity tests hold to; ``ascend/env.sh`` explains the faster modes).

The draw of every forward (RNA path, CTRW noise) comes from the core's controller and is passed to the network
as tensors, so a compiled graph is reused for every path and noise. The optimizer is MindSpore's fused SGD,
which matches torch.optim.SGD here: g = grad + wd * w on every parameter (its filter skips only names
containing gamma/beta, and our canonical names are weight/bias), the momentum buffer starts as the first
gradient (``stat`` = 1 until the first step), w -= lr * buffer. The parity tests hold it to torch's numbers.
"""

from __future__ import annotations

import os
from typing import Any

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from rna_core.apart import BNPerturbation
from rna_core.attacks import AttackSpec
from rna_core.backend import Backend, Capabilities, Gradient, SGDConfig, StepResult
from rna_core.controller import PathController
from rna_core.distributed import World

from . import attacks
from .layers import BatchGroupNorm
from .network import Network

MODES = ("pynative", "graph")


class MindSporeBackend(Backend):
    name = "mindspore"
    capabilities = Capabilities(graph_mode=True, deterministic=True, devices=("CPU", "GPU", "Ascend"))

    def __init__(self, mode: str = "pynative", device: str = "CPU") -> None:
        if mode not in MODES:
            raise ValueError(f"mindspore mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        device_id = os.environ.get("DEVICE_ID")  # set per worker by ascend/launch_rank_table.sh
        try:
            if device_id and device != "CPU":
                ms.set_device(device, int(device_id))
            else:
                ms.set_device(device)
        except RuntimeError:  # the runtime already runs (kernels executed): fine if it is that device
            if ms.get_context("device_target") != device:
                raise
        if device == "Ascend":  # keep float32 (parity) unless ascend/env.sh trades it for speed
            ms.device_context.ascend.op_precision.precision_mode(
                os.environ.get("RNA_ASCEND_PRECISION_MODE", "must_keep_origin_dtype"))
        self._fns: dict[tuple[int, str], Any] = {}
        self._world: World | None = None

    def world(self) -> World:
        """Under msrun (MS_WORKER_NUM) or a rank-table launch (RANK_SIZE > 1): ``init()`` the communication
        group and train DATA_PARALLEL with the gradient mean (``nn.DistributedGradReducer`` in every step)."""
        if self._world is None:
            if int(os.environ.get("MS_WORKER_NUM", os.environ.get("RANK_SIZE", "1"))) > 1:
                from mindspore.communication import get_group_size, get_rank, init

                init()
                ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
                self._world = World(get_rank(), get_group_size())
            else:
                self._world = World()
        return self._world

    def _reducer(self, params):
        """Identity in one process; the mean over ranks of every gradient in a data-parallel world."""
        size = self.world().size
        if size == 1:
            return lambda grads: grads
        return nn.DistributedGradReducer(params, mean=True, degree=size)

    def _compile(self, fn):
        return ms.jit(fn) if self.mode == "graph" else fn

    def _draw(self, model: Network) -> tuple[Tensor, Tensor]:
        """(path, noise) of the next forward as tensors; a model without random weights gets a 1-element noise.
        The tuple is ``ms.mutable`` so GRAPH_MODE treats it as data, not as constants to compile in."""
        path, noise = model.controller.next_draw()
        return ms.mutable((Tensor(path.astype(np.int32)),
                           Tensor(noise if noise is not None else np.zeros(1, np.float32))))

    def seed(self, seed: int) -> None:
        ms.set_seed(seed)

    def build_model(self, graph, controller: PathController) -> Network:
        return Network(graph, controller)

    def sync_batch_norm(self, model: Network) -> None:
        if self.world().size == 1:
            return
        if self._fns:
            raise RuntimeError("enable SyncBN before the first compiled step")
        offsets = model.bn_layout.offset_of()
        for name, cell in model.cells_and_names():
            if isinstance(cell, BatchGroupNorm) and name in offsets:
                cell.synchronize(self.world().size)

    def tensor(self, array: np.ndarray) -> Tensor:
        array = np.ascontiguousarray(array)
        return Tensor(array.astype(np.int32) if array.dtype == np.int64 else array)

    def numpy(self, tensor: Tensor) -> np.ndarray:
        return tensor.asnumpy()

    def set_training(self, model: Network, training: bool) -> None:
        model.set_train(training)

    @staticmethod
    def _named(model: Network) -> dict[str, Any]:
        return dict(model.parameters_and_names())

    def get_state(self, model: Network) -> dict[str, np.ndarray]:
        return {k: p.asnumpy().copy() for k, p in self._named(model).items()}

    def set_state(self, model: Network, state: dict[str, np.ndarray]) -> None:
        own = self._named(model)
        self.check_state({k: tuple(p.shape) for k, p in own.items()}, state)
        for k, p in own.items():
            p.set_data(Tensor(np.asarray(state[k], np.float32)))

    def get_params(self, model: Network, names: list[str]) -> dict[str, np.ndarray]:
        own = self._named(model)
        return {k: own[k].asnumpy().copy() for k in names}

    def set_params(self, model: Network, values: dict[str, np.ndarray]) -> None:
        own = self._named(model)
        for k, v in values.items():
            own[k].set_data(Tensor(np.asarray(v, np.float32)))

    def make_optimizer(self, model: Network, config: SGDConfig) -> nn.SGD:
        return nn.SGD(model.trainable_params(), learning_rate=config.lr, momentum=config.momentum,
                      weight_decay=config.weight_decay)

    def set_lr(self, optimizer: nn.SGD, lr: float) -> None:
        optimizer.learning_rate.set_data(Tensor(lr, ms.float32))

    @staticmethod
    def _moments(optimizer: nn.SGD, model: Network):
        names = {id(p): k for k, p in model.parameters_and_names()}
        return [(names[id(p)], acc, st) for p, acc, st in zip(optimizer.parameters, optimizer.accum, optimizer.stat,
                                                              strict=True)]

    def get_optimizer_state(self, optimizer: nn.SGD, model: Network) -> dict[str, np.ndarray]:
        return {f"momentum.{name}": acc.asnumpy().copy() for name, acc, st in self._moments(optimizer, model)
                if float(st.asnumpy().reshape(-1)[0]) == 0}

    def set_optimizer_state(self, optimizer: nn.SGD, model: Network, state: dict[str, np.ndarray]) -> None:
        moments = {name: (acc, st) for name, acc, st in self._moments(optimizer, model)}
        for key, value in state.items():
            name = key.removeprefix("momentum.")
            if name not in moments:
                raise ValueError(f"optimizer state names unknown parameter {name!r}")
            acc, st = moments[name]
            acc.set_data(Tensor(np.asarray(value, np.float32)))
            st.set_data(Tensor(np.zeros(st.shape, np.float32)))

    def _fn(self, model: Network, kind: str, optimizer: nn.SGD | None = None):
        key = (id(model), kind, id(optimizer))
        if key not in self._fns:
            if kind == "train":
                def loss_fn(x, y, path):
                    logits = model(x, path)
                    return ops.cross_entropy(logits, y), logits

                grad_fn = ms.value_and_grad(loss_fn, None, optimizer.parameters, has_aux=True)
                reduce = self._reducer(optimizer.parameters)

                def step(x, y, path):
                    (loss, logits), grads = grad_fn(x, y, path)
                    optimizer(reduce(grads))
                    return loss, logits

                self._fns[key] = self._compile(step)
            elif kind.startswith(("grad:", "forward:")):
                self._fns[key] = self._compile(self._perturbed_fn(model, kind))
            elif kind == "apply":
                def apply(grads):
                    return optimizer(grads)

                self._fns[key] = self._compile(apply)
            elif kind.startswith("loss:"):
                per_example = attacks.loss_function(kind[5:])

                def input_loss(x, y, w, path):
                    logits = model(x, path)
                    per = per_example(logits, y, w)
                    return per.sum(), per, logits

                self._fns[key] = self._compile(ms.value_and_grad(input_loss, 0, None, has_aux=True))
            else:
                def forward(x, path):
                    return model(x, path)

                self._fns[key] = self._compile(forward)
        return self._fns[key]

    def _perturbed_fn(self, model: Network, kind: str):
        """``grad:G:T`` / ``forward:G:T``: a pass whose BN layers run Eq. 3 with G groups, tracking iff T; the
        constants are baked into the draw tuple so each (G, T) compiles once."""
        what, groups, track = kind.split(":")
        groups, track = int(groups), track == "True"

        def forward(x, draw, delta):
            return model(x, (draw[0], draw[1], delta, groups, track))

        if what == "forward":
            return forward

        def loss_fn(x, y, draw, delta):
            logits = forward(x, draw, delta)
            return ops.cross_entropy(logits, y), logits

        grad_fn = ms.value_and_grad(loss_fn, 3, model.trainable_params(), has_aux=True)
        if self.world().size == 1:
            return grad_fn
        reduce, size = self._reducer(model.trainable_params()), self.world().size
        mean_delta = ops.AllReduce()

        def reduced(x, y, draw, delta):
            out, (g_delta, grads) = grad_fn(x, y, draw, delta)
            return out, (mean_delta(g_delta) / size, reduce(grads))

        return reduced

    @staticmethod
    def _delta(model: Network, bn: BNPerturbation, batch: int) -> Tensor:
        bn.check_batch(batch)
        delta = model.bn_layout.check(bn.delta)
        return Tensor(delta if delta.size else np.zeros(1, np.float32))  # no size-0 tensors in a graph

    def gradient(self, model: Network, x: Tensor, y: Tensor, bn: BNPerturbation) -> Gradient:
        fn = self._fn(model, f"grad:{bn.groups}:{bn.track}")
        (loss, logits), (g_delta, grads) = fn(x, y, self._draw(model), self._delta(model, bn, len(y)))
        correct = int((logits.argmax(1) == y).sum().asnumpy())
        return Gradient(tuple(grads), g_delta.asnumpy()[:model.bn_layout.size], float(loss.asnumpy()), correct,
                        len(y))

    def apply_gradient(self, model: Network, optimizer: nn.SGD, terms: list[tuple[float, Gradient]]) -> None:
        grads = tuple(sum((w * g.params[i] for w, g in terms[1:]), terms[0][0] * terms[0][1].params[i])
                      for i in range(len(terms[0][1].params)))
        self._fn(model, "apply", optimizer)(ms.mutable(grads))

    def grad_norm(self, grad: Gradient) -> float:
        return float(np.sqrt(sum(float((g * g).sum().asnumpy()) for g in grad.params)))

    def shift_weights(self, model: Network, grad: Gradient, scale: float) -> list[Tensor]:
        saved = []
        for p, g in zip(model.trainable_params(), grad.params, strict=True):
            saved.append(p.value().copy())
            ops.assign(p, p + scale * g)
        return saved

    def restore_weights(self, model: Network, saved: list[Tensor]) -> None:
        for p, s in zip(model.trainable_params(), saved, strict=True):
            ops.assign(p, s)

    def train_step(self, model: Network, optimizer: nn.SGD, x: Tensor, y: Tensor) -> StepResult:
        loss, logits = self._fn(model, "train", optimizer)(x, y, self._draw(model))
        correct = int((logits.argmax(1) == y).sum().asnumpy())
        return StepResult(float(loss.asnumpy()), correct, len(y))

    def logits(self, model: Network, x: Tensor, bn: BNPerturbation | None = None) -> Tensor:
        if bn is None:
            return self._fn(model, "forward")(x, self._draw(model))
        return self._fn(model, f"forward:{bn.groups}:{bn.track}")(x, self._draw(model), self._delta(model, bn, len(x)))

    def input_gradient(self, model: Network, x: Tensor, y: Tensor) -> np.ndarray:
        return _Oracle(self, model).grad("ce", x, y, y, self._draw(model))[2].asnumpy()

    def attack(self, model: Network, x: Tensor, y: Tensor, spec: AttackSpec, rng: np.random.Generator) -> Tensor:
        return attacks.run(_Oracle(self, model), x, y, spec, rng)


class _Oracle:
    """What the attacks see of a model (``attacks.Oracle``): paths, per-loss input gradients, logits."""

    def __init__(self, backend: MindSporeBackend, model: Network) -> None:
        self.backend, self.model = backend, model
        self.num_classes = model.graph.num_classes

    def path(self) -> tuple[Tensor, Tensor]:
        return self.backend._draw(self.model)

    def grad(self, loss: str, x: Tensor, y: Tensor, w: Tensor, path: tuple[Tensor, Tensor]
             ) -> tuple[Tensor, Tensor, Tensor]:
        (_, per, logits), grad = self.backend._fn(self.model, f"loss:{loss}")(x, y, w, path)
        return per, logits, grad

    def logits(self, x: Tensor, path: tuple[Tensor, Tensor]) -> Tensor:
        return self.backend._fn(self.model, "forward")(x, path)
