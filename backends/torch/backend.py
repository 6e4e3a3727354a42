"""The PyTorch implementation of ``rna_core.backend.Backend``."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rna_core.attacks import AttackSpec
from rna_core.backend import Backend, Capabilities, SGDConfig, StepResult
from rna_core.controller import PathController

from . import attacks
from .network import Network


class TorchBackend(Backend):
    name = "torch"
    capabilities = Capabilities(graph_mode=False, deterministic=True, devices=("cpu", "cuda"))

    def __init__(self, device: str = "auto") -> None:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def build_model(self, graph, controller: PathController) -> Network:
        return Network(graph, controller).to(self.device)

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    def numpy(self, tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().cpu().numpy()

    def set_training(self, model: Network, training: bool) -> None:
        model.train(training)

    def get_state(self, model: Network) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}

    def set_state(self, model: Network, state: dict[str, np.ndarray]) -> None:
        self.check_state({k: tuple(v.shape) for k, v in model.state_dict().items()}, state)
        model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})

    def get_params(self, model: Network, names: list[str]) -> dict[str, np.ndarray]:
        params = dict(model.named_parameters())
        return {k: params[k].detach().cpu().numpy().copy() for k in names}

    @torch.no_grad()
    def set_params(self, model: Network, values: dict[str, np.ndarray]) -> None:
        params = dict(model.named_parameters())
        for k, v in values.items():
            params[k].copy_(torch.from_numpy(np.asarray(v, np.float32)))

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

    def train_step(self, model: Network, optimizer: torch.optim.SGD, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        out = model(x)
        loss = F.cross_entropy(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return StepResult(float(loss.detach()), int((out.argmax(1) == y).sum()), len(y))

    @torch.no_grad()
    def logits(self, model: Network, x: torch.Tensor) -> torch.Tensor:
        return model(x)

    def attack(self, model: Network, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec,
               rng: np.random.Generator) -> torch.Tensor:
        return attacks.run(model, x, y, spec, rng)

    def input_gradient(self, model: Network, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        grad, _, _ = attacks.loss_grad(model, x, lambda z: F.cross_entropy(z, y, reduction="none"), reduce="sum")
        return self.numpy(grad)
