"""The MindSpore implementation of ``rna_core.backend.Backend`` (PyNative, or GRAPH_MODE through ``ms.jit``).

On Ascend the operator precision mode is ``RNA_ASCEND_PRECISION_MODE`` (default ``must_keep_origin_dtype``: the
float32 the parity tests hold to; ``ascend/env.sh`` explains the faster modes).

The draw of every forward (RNA path, CTRW noise) comes from the core's controller and is passed to the network
as tensors, so a compiled program is reused for every path and noise; each model keeps its programs
(``programs.Programs``). The optimizer is ``optimizer.MaskedSGD``: torch.optim.SGD's update, and like torch it
leaves an RNA candidate the step's draw did not select untouched (no weight decay, no momentum); a gradient
handle holds None for such a parameter, as torch's does. The parity tests hold it to torch's numbers over many
steps.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import mindspore as ms
import numpy as np
from mindspore import Tensor

from rna_core.apart import BNPerturbation
from rna_core.backend import Backend, Gradient, SGDConfig, StepResult
from rna_core.controller import DrawController
from rna_core.distributed import World
from rna_core.validation import ConfigError

from .foreign import Adopted, differs_between_forwards
from .network import Network
from .optimizer import MaskedSGD
from .oracle import MindSporeOps, MindSporeOracle

MODES = ("pynative", "graph")


def _set_threads(threads: int | None) -> int | None:
    """CPU kernel threads from ``threads``, else ``RNA_MINDSPORE_THREADS``, else the cores this process may use
    (MindSpore's default pool of 25 oversubscribes a small machine and starves torch in the same process).
    Dispatch threads keep MindSpore's default: setting them at all made GRAPH_MODE calls twice as slow on a
    2-core machine (PGD-20, ResNet-18 width 8, batch 32: 15.5 s by default, 32 s with 2 or 5 dispatch threads).
    MindSpore takes the setting once per process: later backends keep the first one (returns the count set, or
    None if it was set before)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    n = threads or int(os.environ.get("RNA_MINDSPORE_THREADS", "0")) or cores
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    try:
        ms.device_context.cpu.op_tuning.threads_num(n)
    except RuntimeError:  # "can not be set repeatedly": an earlier backend in this process set it
        return None
    return n


class MindSporeBackend(Backend):
    """Parameters written from the host (state, learning rate, momentum, SAM's shifted weights) are written with
    ``copy_`` into their existing storage: in GRAPH_MODE a program compiled before an optimizer step kept reading
    the old values after ``set_data`` or an eager ``assign`` for models with data-dependent branches (RNA slots),
    which the contract test ``test_state_written_after_a_step_reaches_every_program`` guards."""

    name = "mindspore"

    def __init__(self, mode: str = "pynative", device: str = "CPU", threads: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mindspore mode must be one of {MODES}, got {mode!r}")
        self.mode, self.device = mode, device
        self.threads = _set_threads(threads)
        self.ops = MindSporeOps()
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
        self._world: World | None = None

    def describe(self) -> dict[str, str]:
        return {"backend": self.name, "framework": f"mindspore {ms.__version__}", "device": self.device,
                "mode": {"graph": "GRAPH_MODE", "pynative": "PyNative"}[self.mode]}

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

    def seed(self, seed: int) -> None:
        ms.set_seed(seed)

    def prepare(self, model: Network, precision: str = "fp32", channels_last: bool | None = None,
                compile: bool = False, compile_mode: str = "default") -> None:
        """``precision`` ``fp16`` / ``bf16``: ``Network.mixed_precision`` (MindSpore's O2 level: convolutions and
        dense layers in half precision, normalization and loss in float32; fp16 with a static loss scale of 1024).
        The CPU kernels have no bfloat16 convolution. ``compile`` means GRAPH_MODE (``mode="graph"``), where every
        program is compiled once per model (``compile_mode`` has no meaning here); channels_last does not exist
        here (NCHW only)."""
        if precision not in ("fp32", "fp16", "bf16"):
            raise ConfigError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
        if channels_last:
            raise ConfigError("channels_last: the MindSpore backend runs NCHW only (set channels_last to null/false)")
        if compile and self.mode != "graph":
            raise ConfigError("compile on MindSpore is GRAPH_MODE: use the backend with mode='graph' (--mode graph)")
        if precision == "bf16" and self.device == "CPU":
            raise ConfigError("precision bf16: MindSpore's CPU kernels have no bfloat16 convolution; use fp16 "
                              "or fp32 on CPU, bf16 on GPU / Ascend")
        if precision != "fp32":
            model.mixed_precision(ms.float16 if precision == "fp16" else ms.bfloat16,
                                  1024.0 if precision == "fp16" else 1.0)

    def build_model(self, graph, controller: DrawController) -> Network:
        return Network(graph, controller, self.mode == "graph", self.world().size)

    def sync_batch_norm(self, model: Network) -> None:
        if self.world().size > 1:
            model.synchronize_batch_norm(self.world().size)

    def set_training(self, model: Network, training: bool) -> None:
        model.set_train(training)

    @staticmethod
    def _named(model: Network) -> dict[str, ms.Parameter]:
        """The model's state under canonical names; an adopted cell's names without the wrapper's ``module.`` (as on
        torch)."""
        prefix = "module." if isinstance(model, Adopted) else ""
        return {k.removeprefix(prefix): p for k, p in model.parameters_and_names()}

    def get_state(self, model: Network, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        own = self._named(model)
        return {k: own[k].asnumpy().copy() for k in (own if names is None else names)}

    def set_state(self, model: Network, state: dict[str, np.ndarray], strict: bool = True) -> None:
        own = self._named(model)
        self.check_state({k: tuple(p.shape) for k, p in own.items()}, state, strict)
        for k, v in state.items():
            own[k].copy_(Tensor(np.asarray(v, np.float32)))

    def make_optimizer(self, model: Network, config: SGDConfig) -> MaskedSGD:
        return MaskedSGD(model.trainable_params(), config.lr, config.momentum, config.weight_decay)

    def set_lr(self, optimizer: MaskedSGD, lr: float) -> None:
        optimizer.learning_rate.copy_(Tensor(lr, ms.float32))

    @staticmethod
    def _names(optimizer: MaskedSGD, model: Network) -> list[str]:
        names = {id(p): k for k, p in model.parameters_and_names()}
        return [names[id(p)] for p in optimizer.params]

    def get_optimizer_state(self, optimizer: MaskedSGD, model: Network) -> dict[str, np.ndarray]:
        """torch's state: a momentum buffer for every parameter that has taken a step (none without momentum)."""
        if optimizer.momentum == 0:
            return {}
        return {f"momentum.{name}": acc.asnumpy().copy() for name, acc, started in
                zip(self._names(optimizer, model), optimizer.accum, optimizer.started(), strict=True) if started}

    def set_optimizer_state(self, optimizer: MaskedSGD, model: Network, state: dict[str, np.ndarray]) -> None:
        index = {name: i for i, name in enumerate(self._names(optimizer, model))}
        stat = optimizer.stat.asnumpy().copy()
        for key, value in state.items():
            name = key.removeprefix("momentum.")
            if name not in index:
                raise ValueError(f"optimizer state names unknown parameter {name!r}")
            optimizer.accum[index[name]].copy_(Tensor(np.asarray(value, np.float32)))
            stat[index[name]] = 0
        optimizer.stat.copy_(Tensor(stat))

    @staticmethod
    def _delta(model: Network, bn: BNPerturbation, batch: int) -> Tensor:
        bn.check_batch(batch)
        delta = model.bn_layout.check(bn.delta)
        return Tensor(delta if delta.size else np.zeros(1, np.float32))  # no size-0 tensors in a graph

    def gradient(self, model: Network, x: Tensor, y: Tensor, bn: BNPerturbation) -> Gradient:
        fn = model.programs.perturbed_grad(bn.groups, bn.track)
        (loss, logits), (g_delta, grads) = fn(x, y, model.next_draw(), self._delta(model, bn, len(y)))
        correct = int((logits.argmax(1) == y).sum().asnumpy())
        used = model.param_mask()  # None for the candidates off the path, as torch's autograd gives
        params = tuple(g if u else None for g, u in zip(grads, used, strict=True))
        return Gradient(params, g_delta.asnumpy()[:model.bn_layout.size], float(loss.asnumpy()), correct, len(y))

    def apply_gradient(self, model: Network, optimizer: MaskedSGD, terms: list[tuple[float, Gradient]]) -> None:
        grads, mask = [], np.zeros(len(optimizer.params), np.float32)
        for i, p in enumerate(optimizer.params):
            parts = [w * g.params[i] for w, g in terms if g.params[i] is not None]
            mask[i] = bool(parts)
            grads.append(sum(parts[1:], parts[0]) if parts else ms.ops.zeros(p.shape, p.dtype))
        model.programs.apply(optimizer)(ms.mutable(tuple(grads)), Tensor(mask))

    def shift_weights(self, model: Network, grad: Gradient, scale: float) -> list[Tensor | None]:
        saved = []
        for p, g in zip(model.trainable_params(), grad.params, strict=True):
            saved.append(None if g is None else p.value().copy())
            if g is not None:
                p.copy_(p + scale * g)
        return saved

    def restore_weights(self, model: Network, saved: list[Tensor | None]) -> None:
        for p, s in zip(model.trainable_params(), saved, strict=True):
            if s is not None:
                p.copy_(s)

    def train_step(self, model: Network, optimizer: MaskedSGD, x: Tensor, y: Tensor) -> StepResult:
        draw = model.next_draw()
        loss, logits = model.programs.train_step(optimizer)(x, y, draw, Tensor(model.param_mask()))
        return StepResult(loss, (logits.argmax(1) == y).astype(ms.float32).sum(), len(y))  # read by the caller

    def logits(self, model: Network, x: Tensor, bn: BNPerturbation | None = None) -> Tensor:
        if bn is None:
            return model.programs.forward()(x, model.next_draw())
        return model.programs.perturbed_forward(bn.groups, bn.track)(x, model.next_draw(),
                                                                     self._delta(model, bn, len(x)))

    def oracle(self, model: Network) -> MindSporeOracle:
        return MindSporeOracle(model, self.ops)

    def adopt(self, module: ms.nn.Cell, num_classes: int, in_channels: int, probe: np.ndarray | None = None
              ) -> tuple[Adopted, MindSporeBackend]:
        """A user's ``nn.Cell`` as a model of this backend (``foreign.Adopted``); randomness detected on ``probe``
        images (two forwards on the same input that differ)."""
        if not isinstance(module, ms.nn.Cell):
            raise TypeError(f"the mindspore backend adopts an nn.Cell, got {type(module).__name__}")
        random = hasattr(module, "rna_controller") or (
            probe is not None and differs_between_forwards(module, Tensor(np.asarray(probe, np.float32))))
        return Adopted(module, num_classes, in_channels, random, self.mode == "graph", self.world().size), self
