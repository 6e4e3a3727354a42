"""The PyTorch implementation of ``rna_core.backend.Backend``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from rna_core.apart import BNPerturbation
from rna_core.backend import Backend, Gradient, SGDConfig, StepResult
from rna_core.controller import DrawController
from rna_core.distributed import World

from .foreign import Adopted, differs_between_forwards
from .network import Network
from .oracle import TorchOps, TorchOracle


class TorchBackend(Backend):
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

    def _all_reduce_mean(self, tensors: list[torch.Tensor | None]) -> None:
        if self.world().size > 1:
            import torch.distributed as dist

            for t in tensors:
                if t is not None:
                    dist.all_reduce(t)
                    t /= self.world().size

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def build_model(self, graph, controller: DrawController) -> Network:
        return Network(graph, controller).to(self.device)

    def sync_batch_norm(self, model: Network) -> None:
        model.synchronize_batch_norm(self.world().size > 1)

    def set_training(self, model: Network, training: bool) -> None:
        model.train(training)

    def get_state(self, model: Network, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        state = model.state_dict()
        return {k: state[k].detach().cpu().numpy().copy() for k in (state if names is None else names)}

    @torch.no_grad()
    def set_state(self, model: Network, state: dict[str, np.ndarray], strict: bool = True) -> None:
        own = model.state_dict()
        self.check_state({k: tuple(v.shape) for k, v in own.items()}, state, strict)
        for k, v in state.items():
            own[k].copy_(torch.from_numpy(np.asarray(v)))

    def make_optimizer(self, model: Network, config: SGDConfig) -> torch.optim.SGD:
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)

    def set_lr(self, optimizer: torch.optim.SGD, lr: float) -> None:
        for group in optimizer.param_groups:
            group["lr"] = lr

    def get_optimizer_state(self, optimizer: torch.optim.SGD, model: Network) -> dict[str, np.ndarray]:
        out = {}
        for name, p in model.named_parameters():
            buf = optimizer.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                out[f"momentum.{name}"] = buf.detach().cpu().numpy().copy()
        return out

    def set_optimizer_state(self, optimizer: torch.optim.SGD, model: Network, state: dict[str, np.ndarray]) -> None:
        params = dict(model.named_parameters())
        for key, value in state.items():
            name = key.removeprefix("momentum.")
            if name not in params:
                raise ValueError(f"optimizer state names unknown parameter {name!r}")
            optimizer.state[params[name]]["momentum_buffer"] = self.tensor(np.asarray(value))

    def prepare(self, model: Network, precision: str = "fp32", channels_last: bool | None = None,
                compile: bool = False, compile_mode: str = "default") -> None:
        """``Network.prepare`` (``channels_last=None``: off). fp16 training scales the loss
        (``torch.amp.GradScaler``; its overflow check reads one flag on the host per step)."""
        model.prepare(precision, bool(channels_last), compile, mode=compile_mode)
        if precision == "fp16":
            model.replicas["scaler"] = torch.amp.GradScaler(self.device.type)

    def train_step(self, model: Network, optimizer: torch.optim.SGD, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        """One step; loss and correct count stay on the device (no host synchronisation)."""
        out = self._parallel(model)(x)
        loss = F.cross_entropy(out, y)
        optimizer.zero_grad(set_to_none=True)
        scaler = model.replicas.get("scaler")
        if scaler is None:
            loss.backward()
            model.drop_unselected_grads()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            model.drop_unselected_grads()
            scaler.step(optimizer)
            scaler.update()
        return StepResult(loss.detach(), (out.argmax(1) == y).sum(), len(y))

    @torch.no_grad()
    def logits(self, model: Network, x: torch.Tensor, bn: BNPerturbation | None = None) -> torch.Tensor:
        if bn is None:
            return model(x)
        with self._perturbed(model, bn, len(x)):
            return model(x)

    @contextmanager
    def _perturbed(self, model: Network, bn: BNPerturbation, batch: int, grad: bool = False
                   ) -> Iterator[torch.Tensor]:
        bn.check_batch(batch)
        delta = self.tensor(model.bn_layout.check(bn.delta)).requires_grad_(grad)
        with model.perturbed(delta, bn.groups, bn.track):
            yield delta

    def gradient(self, model: Network, x: torch.Tensor, y: torch.Tensor, bn: BNPerturbation) -> Gradient:
        params = [p for p in model.parameters() if p.requires_grad]
        with self._perturbed(model, bn, len(x), grad=True) as delta:
            out = model(x)
            loss = F.cross_entropy(out, y)
            *grads, g_delta = torch.autograd.grad(loss, [*params, delta], allow_unused=True)
        g_delta = torch.zeros_like(delta) if g_delta is None else g_delta
        self._all_reduce_mean([*grads, g_delta])  # data parallel: the global batch's mean gradient
        g_delta = self.numpy(g_delta)
        return Gradient(grads, g_delta, float(loss.detach()), int((out.argmax(1) == y).sum()), len(y))

    def apply_gradient(self, model: Network, optimizer: torch.optim.SGD, terms: list[tuple[float, Gradient]]) -> None:
        params = [p for p in model.parameters() if p.requires_grad]
        for i, p in enumerate(params):
            parts = [w * g.params[i] for w, g in terms if g.params[i] is not None]
            p.grad = torch.stack(parts).sum(0) if parts else None  # None: unused this step, as in backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def shift_weights(self, model: Network, grad: Gradient, scale: float) -> list[torch.Tensor | None]:
        params = [p for p in model.parameters() if p.requires_grad]
        saved = []
        for p, g in zip(params, grad.params, strict=True):
            saved.append(None if g is None else p.detach().clone())
            if g is not None:
                p.add_(g, alpha=scale)
        return saved

    @torch.no_grad()
    def restore_weights(self, model: Network, saved: list[torch.Tensor | None]) -> None:
        params = [p for p in model.parameters() if p.requires_grad]
        for p, s in zip(params, saved, strict=True):
            if s is not None:
                p.copy_(s)

    def oracle(self, model: Network) -> TorchOracle:
        return TorchOracle(model, self.ops)

    def adopt(self, module: torch.nn.Module, num_classes: int, in_channels: int,
              probe: np.ndarray | None = None) -> tuple[Adopted, TorchBackend]:
        """``module`` as a model of this backend (``foreign.Adopted``), with the backend of the device it lives
        on. Its randomness: rna-core's if ``foreign.randomize`` made it, else detected on ``probe`` images (two
        forwards on the same input that differ)."""
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"the torch backend adopts an nn.Module, got {type(module).__name__}")
        held = next(iter(module.parameters()), None)
        be = self if held is None or held.device == self.device else TorchBackend(str(held.device))
        if hasattr(module, "rna_controller"):
            random = module.rna_controller.is_random
        else:
            random = probe is not None and differs_between_forwards(module, be.tensor(probe))
        return Adopted(module, num_classes, in_channels, random), be
