"""The MindSpore implementation of ``rna_core.backend.Backend`` (PyNative, or GRAPH_MODE through ``ms.jit``).

On Ascend the operator precision mode is ``RNA_ASCEND_PRECISION_MODE`` (default ``must_keep_origin_dtype``: the
float32 the parity tests hold to; ``ascend/env.sh`` explains the faster modes).

The draw of every forward (RNA path, CTRW noise, APART's perturbation) comes from the core and is written into the
model's ``DrawState`` before the call (``Network.load``), so a compiled program is reused for every draw; each model
keeps its programs (``programs.Programs``). The optimizer is ``optimizer.MaskedSGD``: torch.optim.SGD's update,
and like torch it leaves an RNA candidate the step's draw did not select untouched (no weight decay, no
momentum); a gradient holds None for such a parameter, as torch's does. The parity tests hold it to torch's
numbers over many steps.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import mindspore as ms
import numpy as np
from mindspore import Tensor

from rna_core.backend import DELTA, INPUT, PARAMS, Backend, Grad, SGDConfig, Speed, check_state
from rna_core.controller import Draw, DrawController
from rna_core.distributed import World
from rna_core.losses import Loss
from rna_core.validation import ConfigError

from .loader import worker_batches
from .network import Network
from .ops import OPS
from .optimizer import MaskedSGD
from .own_model import adopt_cell

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
        self.ops = OPS
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

    # -- models ---------------------------------------------------------------------------------------------------
    def build_model(self, graph, controller: DrawController, seed: int = 0) -> Network:
        ms.set_seed(seed)
        return Network.build(graph, controller, self.mode == "graph", self.world().size)

    def adopt(self, module: ms.nn.Cell, num_classes: int, in_channels: int, random: bool = False
              ) -> tuple[Network, MindSporeBackend]:
        """A user's ``nn.Cell`` as a model of this backend (``own_model.adopt_cell``)."""
        if not isinstance(module, ms.nn.Cell):
            raise TypeError(f"the mindspore backend adopts an nn.Cell, got {type(module).__name__}")
        return adopt_cell(module, num_classes, in_channels, random, self.mode == "graph", self.world().size), self

    def prepare(self, model: Network, speed: Speed) -> None:
        """``precision`` ``fp16`` / ``bf16``: ``Network.mixed_precision`` (MindSpore's O2 level: convolutions and
        dense layers in half precision, normalization and loss in float32; fp16 with a static loss scale of 1024).
        The CPU kernels have no bfloat16 convolution. ``compile`` means GRAPH_MODE (``mode="graph"``), where every
        program is compiled once per model (``compile_mode`` has no meaning here); channels_last does not exist
        here (NCHW only). ``sync_bn``: ``Network.synchronize_batch_norm`` in a data-parallel world."""
        precision = speed.precision
        if precision not in ("fp32", "fp16", "bf16"):
            raise ConfigError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
        if speed.channels_last:
            raise ConfigError("channels_last: the MindSpore backend runs NCHW only (set channels_last to null/false)")
        if speed.compile and self.mode != "graph":
            raise ConfigError("compile on MindSpore is GRAPH_MODE: use the backend with mode='graph' (--mode graph)")
        if precision == "bf16" and self.device == "CPU":
            raise ConfigError("precision bf16: MindSpore's CPU kernels have no bfloat16 convolution; use fp16 "
                              "or fp32 on CPU, bf16 on GPU / Ascend")
        if speed.sync_bn and self.world().size > 1:
            model.synchronize_batch_norm(self.world().size)
        if precision != "fp32":
            model.mixed_precision(ms.float16 if precision == "fp16" else ms.bfloat16,
                                  1024.0 if precision == "fp16" else 1.0)

    # -- parameters -----------------------------------------------------------------------------------------------
    def get_state(self, model: Network, names: Iterable[str] | None = None, optimizer: MaskedSGD | None = None
                  ) -> dict[str, np.ndarray]:
        if optimizer is not None:  # torch's state: a momentum buffer for every parameter that has taken a step
            if optimizer.momentum == 0:
                return {}
            return {f"momentum.{name}": acc.asnumpy().copy() for name, acc, started in
                    zip(self._names(optimizer, model), optimizer.accum, optimizer.started(), strict=True) if started}
        own = model.named()
        return {k: own[k].asnumpy().copy() for k in (own if names is None else names)}

    def set_state(self, model: Network, state: dict[str, np.ndarray], strict: bool = True,
                  optimizer: MaskedSGD | None = None) -> None:
        if optimizer is not None:
            self._set_momentum(model, optimizer, state)
            return
        own = model.named()
        check_state({k: tuple(p.shape) for k, p in own.items()}, state, strict)
        for k, v in state.items():
            own[k].copy_(Tensor(np.asarray(v, np.float32)))

    @staticmethod
    def _names(optimizer: MaskedSGD, model: Network) -> list[str]:
        names = {id(p): k.removeprefix(model.prefix) for k, p in model.parameters_and_names()}
        return [names[id(p)] for p in optimizer.params]

    def _set_momentum(self, model: Network, optimizer: MaskedSGD, state: dict[str, np.ndarray]) -> None:
        index = {name: i for i, name in enumerate(self._names(optimizer, model))}
        stat = optimizer.stat.asnumpy().copy()
        for key, value in state.items():
            name = key.removeprefix("momentum.")
            if name not in index:
                raise ValueError(f"optimizer state names unknown parameter {name!r}")
            optimizer.accum[index[name]].copy_(Tensor(np.asarray(value, np.float32)))
            stat[index[name]] = 0
        optimizer.stat.copy_(Tensor(stat))

    def get_params(self, model: Network) -> list[Tensor]:
        return [p.value().copy() for p in model.trainable_params()]

    def set_params(self, model: Network, values: list[Tensor]) -> None:
        for p, v in zip(model.trainable_params(), values, strict=True):
            p.copy_(v)

    # -- computation on one draw ----------------------------------------------------------------------------------
    @staticmethod
    @contextmanager
    def _drawn(model: Network, draw: Draw, batch: int) -> Iterator[None]:
        """``draw`` written for the programs called inside the block; for an APART pass its groups and track are
        set meanwhile (constants of the program each (groups, track) compiles)."""
        model.load(draw)
        state = model.state
        if draw.bn is not None:
            draw.bn.check_batch(batch)
            state.groups, state.track = draw.bn.groups, draw.bn.track
        state.pending = True
        try:
            yield
        finally:
            state.pending, state.groups, state.track = False, 0, True

    def logits(self, model: Network, x: Tensor, draw: Draw) -> Tensor:
        with self._drawn(model, draw, x.shape[0]):
            return model.programs.forward()(x)

    def value_and_grad(self, model: Network, loss: Loss, x, y, w, draw: Draw,
                       wrt: tuple[str, ...] = (PARAMS,)) -> Grad:
        if DELTA in wrt and draw.bn is None:
            raise ValueError("a gradient with respect to the BN perturbation needs a draw that carries one")
        xs = x if isinstance(x, tuple) else (x,)
        with self._drawn(model, draw, xs[0].shape[0]):
            (total, per, logits), grads = model.programs.value_and_grad(loss, wrt, len(xs))(*xs, y, w)
        out = Grad(total, per, logits)
        if INPUT in wrt:  # the gradient of the tuple xs first, then the weights'
            inputs, grads = grads if (DELTA in wrt or PARAMS in wrt) else (grads, ())
            out.input = inputs
        grads = list(grads)
        if DELTA in wrt:
            out.delta = grads.pop(0)[:model.bn_layout.size]
        if PARAMS in wrt:
            used = model.param_mask(draw.path)  # None for the candidates off the path, as torch's autograd gives
            out.params = [g if u else None for g, u in zip(grads, used, strict=True)]
        return out

    # -- optimizer ------------------------------------------------------------------------------------------------
    def make_optimizer(self, model: Network, config: SGDConfig) -> MaskedSGD:
        return MaskedSGD(model.trainable_params(), config.lr, config.momentum, config.weight_decay)

    def update(self, model: Network, optimizer: MaskedSGD, terms: list[tuple[float, Grad]], lr: float) -> None:
        optimizer.set_lr(lr)
        grads, mask = [], np.zeros(len(optimizer.params), np.float32)
        for i in range(len(optimizer.params)):
            parts = [(w, g.params[i]) for w, g in terms if g.params[i] is not None]
            mask[i] = bool(parts)
            if len(parts) == 1 and parts[0][0] == 1.0:
                grads.append(parts[0][1])
            elif parts:
                grads.append(sum((w * t for w, t in parts[1:]), parts[0][0] * parts[0][1]))
            else:
                grads.append(optimizer.zero(i))
        model.programs.apply(optimizer)(ms.mutable(tuple(grads)), Tensor(mask))

    # -- input --------------------------------------------------------------------------------------------------------
    def loader(self, samples, indices: np.ndarray, batch_size: int, workers: int):
        """``mindspore.dataset`` with ``workers`` parallel workers."""
        return worker_batches(samples, indices, batch_size, workers)
