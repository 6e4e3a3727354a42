"""The PyTorch implementation of ``rna_core.backend.Backend``: autograd, torch.optim.SGD and DDP."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable

import numpy as np
import torch

from rna_core.backend import DELTA, INPUT, PARAMS, Backend, Grad, SGDConfig, Speed, check_state
from rna_core.controller import Draw, DrawController
from rna_core.distributed import World
from rna_core.losses import Loss

from .loader import worker_batches
from .network import Network
from .ops import TorchOps, to_device
from .own_model import adopt_module

FP16_SCALE = 2.0**10


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty where it cannot be read)."""
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16): where bf16 is a speed gain on the CPU."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


class TorchBackend(Backend):
    """Under fp16 autocast an input gradient is taken of the loss times ``FP16_SCALE`` and divided by it after
    (small per-example gradients of a batch-mean loss would otherwise flush to zero in float16 and leave
    sign(g) = 0); bf16 has float32's range and needs no scale. Parameter gradients under fp16 are those of the
    ``GradScaler``'s scaled loss, which ``update`` unscales."""

    name = "torch"

    def __init__(self, device: str = "auto") -> None:
        if device == "auto":
            device = f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.ops = TorchOps(self.device)
        self._world: World | None = None

    def describe(self) -> dict[str, str]:
        return {"backend": self.name, "framework": f"torch {torch.__version__}", "device": str(self.device),
                "mode": "eager"}

    def world(self) -> World:
        """Under torchrun (WORLD_SIZE > 1) join the process group: NCCL on CUDA, gloo on CPU."""
        if self._world is None:
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                import torch.distributed as dist

                if not dist.is_initialized():
                    dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
                self._world = World(dist.get_rank(), dist.get_world_size())
            else:
                self._world = World()
        return self._world

    def _parallel(self, model: Network) -> torch.nn.Module:
        """The DDP wrapper of ``model`` in a multi-process world (built once; it averages gradients in backward),
        else the model. Unselected RNA candidates get no gradient on any rank (all ranks run the same path)."""
        if self.world().size == 1:
            return model
        if "ddp" not in model.replicas:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model.replicas["ddp"] = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=ids, find_unused_parameters=model.controller.space.is_random)
        return model.replicas["ddp"]

    def _all_reduce_mean(self, t: torch.Tensor) -> None:
        if self.world().size > 1:
            import torch.distributed as dist

            dist.all_reduce(t)
            t /= self.world().size

    # -- models ---------------------------------------------------------------------------------------------------
    def build_model(self, graph, controller: DrawController, seed: int = 0) -> Network:
        torch.manual_seed(seed)
        return Network.build(graph, controller).to(self.device)

    def adopt(self, module: torch.nn.Module, num_classes: int, in_channels: int, random: bool = False
              ) -> tuple[Network, TorchBackend]:
        """``module`` as a model of this backend (``own_model.adopt_module``), with the backend of the device it
        lives on."""
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"the torch backend adopts an nn.Module, got {type(module).__name__}")
        held = next(iter(module.parameters()), None)
        be = self if held is None or held.device == self.device else TorchBackend(str(held.device))
        return adopt_module(module, num_classes, in_channels, random), be

    def prepare(self, model: Network, speed: Speed) -> None:
        """``Network.prepare``; fp16 training scales the loss (``torch.amp.GradScaler``; its overflow check reads
        one flag on the host per step); ``sync_bn``: ``Network.synchronize_batch_norm``."""
        if model.prefix and (speed.precision != "fp32" or speed.channels_last or speed.compile):
            raise ValueError("an adopted module runs as given (fp32, its own layout, uncompiled): prepare the "
                             "module itself")
        if speed.sync_bn and self.world().size > 1:
            if model.prefix:
                raise ValueError("sync_bn: an adopted module keeps its own layers; convert them with "
                                 "torch.nn.SyncBatchNorm.convert_sync_batchnorm before randomizing")
            model.synchronize_batch_norm(self.world().size)
        if speed.precision == "bf16" and self.device.type == "cpu" and cpu_flags() and not native_bf16():
            warnings.warn("precision=bf16 on a CPU without native bf16 (no avx512_bf16 or amx_bf16 among its "
                          "flags): torch emulates it, far slower than fp32 (an AVX2-only AMD EPYC ran a PGD-10 "
                          "training step 11x slower, benchmarks/train_throughput.py); use precision=fp32 here",
                          RuntimeWarning, stacklevel=2)
        model.prepare(speed.precision, bool(speed.channels_last), speed.compile, mode=speed.compile_mode)
        if speed.precision == "fp16":
            model.replicas["scaler"] = torch.amp.GradScaler(self.device.type)

    # -- parameters -----------------------------------------------------------------------------------------------
    def get_state(self, model: Network, names: Iterable[str] | None = None, optimizer=None) -> dict[str, np.ndarray]:
        if optimizer is not None:
            out = {}
            for name, p in model.named_parameters():
                buf = optimizer.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    out[f"momentum.{name.removeprefix(model.prefix)}"] = buf.detach().cpu().numpy().copy()
            return out
        state = model.named_state()
        return {k: state[k].detach().cpu().numpy().copy() for k in (state if names is None else names)}

    @torch.no_grad()
    def set_state(self, model: Network, state: dict[str, np.ndarray], strict: bool = True, optimizer=None) -> None:
        if optimizer is not None:
            params = {k.removeprefix(model.prefix): p for k, p in model.named_parameters()}
            for key, value in state.items():
                name = key.removeprefix("momentum.")
                if name not in params:
                    raise ValueError(f"optimizer state names unknown parameter {name!r}")
                optimizer.state[params[name]]["momentum_buffer"] = self.ops.tensor(np.asarray(value))
            return
        own = model.named_state()
        check_state({k: tuple(v.shape) for k, v in own.items()}, state, strict)
        for k, v in state.items():
            own[k].copy_(torch.from_numpy(np.asarray(v)))

    def get_params(self, model: Network) -> list[torch.Tensor]:
        return [p.detach().clone() for p in model.trainable()]

    @torch.no_grad()
    def set_params(self, model: Network, values: list[torch.Tensor]) -> None:
        for p, v in zip(model.trainable(), values, strict=True):
            p.copy_(v)

    # -- computation on one draw ----------------------------------------------------------------------------------
    @torch.no_grad()
    def logits(self, model: Network, x: torch.Tensor, draw: Draw) -> torch.Tensor:
        return model(x, draw)

    def _delta(self, model: Network, draw: Draw, wrt: tuple[str, ...]) -> torch.Tensor | None:
        if draw.bn is None:
            if DELTA in wrt:
                raise ValueError("a gradient with respect to the BN perturbation needs a draw that carries one")
            return None
        return to_device(model.bn_layout.check(draw.bn.delta), self.device).requires_grad_(DELTA in wrt)

    def value_and_grad(self, model: Network, loss: Loss, x, y, w, draw: Draw,
                       wrt: tuple[str, ...] = (PARAMS,)) -> Grad:
        xs = x if isinstance(x, tuple) else (x,)
        if INPUT in wrt:
            xs = tuple(t.detach().requires_grad_(True) for t in xs)
        delta = self._delta(model, draw, wrt)
        net = self._parallel(model) if PARAMS in wrt else model
        with torch.enable_grad():
            zs = tuple(net(t, draw, delta) for t in xs)
            per = loss.fn(self.ops, zs if len(zs) > 1 else zs[0], y, w, loss.kappa)
            total = per.mean() if loss.mean else per.sum()
            extra = ([delta] if DELTA in wrt else []) + (list(xs) if INPUT in wrt else [])
            grads = self._backward(model, total, PARAMS in wrt, extra)
        out = Grad(total.detach(), per.detach(), zs[0].detach())
        if PARAMS in wrt:
            out.params = grads.pop(0)
        if DELTA in wrt:
            out.delta = grads.pop(0)
            self._all_reduce_mean(out.delta)  # data parallel: the global batch's mean gradient
        if INPUT in wrt:
            out.input = tuple(grads) if isinstance(x, tuple) else grads[0]
        return out

    def _backward(self, model: Network, total: torch.Tensor, params: bool, extra: list[torch.Tensor]) -> list:
        """[parameter gradients (if ``params``), *gradients of ``extra``] of ``total``. The parameters' through
        ``backward`` (DDP averages them there; fp16 scales the loss with the model's GradScaler), the rest alone
        through ``autograd.grad``, which computes no weight gradient."""
        if not params:
            scale = FP16_SCALE if model.precision == "fp16" else 1.0
            grads = torch.autograd.grad(total * scale if scale != 1.0 else total, extra)
            return [g / scale for g in grads] if scale != 1.0 else list(grads)
        trainable = model.trainable()
        for p in trainable:
            p.grad = None
        for t in extra:
            t.grad = None
        scaler = model.replicas.get("scaler")
        (scaler.scale(total) if scaler is not None else total).backward()
        model.drop_unselected_grads()
        grads = [p.grad for p in trainable]  # left in .grad too, as backward() leaves them (the next pass or
        # update replaces them: freed just before the next backward, the allocator reuses their memory for it)
        return [grads, *(t.grad if t.grad is not None else torch.zeros_like(t) for t in extra)]

    def jacobian(self, model: Network, x: torch.Tensor, draw: Draw) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward and K backwards (the core's default takes K forwards)."""
        x = x.detach().requires_grad_(True)
        k = model.num_classes
        scale = FP16_SCALE if model.precision == "fp16" else 1.0
        with torch.enable_grad():
            logits = model(x, draw)
            rows = [torch.autograd.grad(logits[:, j].sum() * scale, x, retain_graph=j + 1 < k)[0] for j in range(k)]
        jac = torch.stack(rows, 1)
        return logits.detach(), jac / scale if scale != 1.0 else jac

    # -- optimizer ------------------------------------------------------------------------------------------------
    def make_optimizer(self, model: Network, config: SGDConfig) -> torch.optim.SGD:
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)

    def update(self, model: Network, optimizer: torch.optim.SGD, terms: list[tuple[float, Grad]], lr: float) -> None:
        for group in optimizer.param_groups:
            group["lr"] = lr
        for i, p in enumerate(model.trainable()):
            parts = [(w, g.params[i]) for w, g in terms if g.params[i] is not None]
            if len(parts) == 1 and parts[0][0] == 1.0:
                p.grad = parts[0][1]
            else:  # None: unused this step, as backward() leaves it
                p.grad = torch.stack([w * t for w, t in parts]).sum(0) if parts else None
        scaler = model.replicas.get("scaler")
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()

    # -- input --------------------------------------------------------------------------------------------------------
    def loader(self, samples, indices: np.ndarray, batch_size: int, workers: int):
        """torch's DataLoader with ``workers`` worker processes (0: decoded in the calling thread)."""
        return worker_batches(samples, indices, batch_size, workers)
