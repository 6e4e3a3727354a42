"""The Backend interface: everything the core's algorithms ask of a framework.

Batches and random draws cross it as numpy arrays; models, optimizers and tensors on the other side
are opaque handles. Parameters cross it as ``dict[str, np.ndarray]`` under canonical, torch-style
names, so one safetensors file serves every backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from .apart import BNPerturbation
from .attacks import AttackSpec
from .controller import PathController
from .distributed import World


@dataclass(frozen=True)
class Capabilities:
    graph_mode: bool = False
    deterministic: bool = True
    devices: tuple[str, ...] = ("cpu",)


@dataclass(frozen=True)
class SGDConfig:
    """SGD with heavy-ball momentum and L2 weight decay on every parameter, torch.optim.SGD's update:
    g = grad + wd * w; b = momentum * b + g; w = w - lr * b."""

    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4


@dataclass
class StepResult:
    loss: float
    correct: int
    count: int


@dataclass
class Gradient:
    """One pass's gradient of the mean cross-entropy: ``params`` is the backend's handle (one tensor per trainable
    parameter, on its device), ``delta`` the gradient w.r.t. the BN perturbation vector (numpy, see
    ``rna_core.apart``); ``loss``, ``correct``, ``count`` describe the pass."""

    params: Any
    delta: np.ndarray
    loss: float
    correct: int
    count: int


class Backend(ABC):
    """A framework behind the core. Subclasses set ``name`` and ``capabilities``."""

    name: str = "abstract"
    capabilities = Capabilities()

    @staticmethod
    def check_state(shapes: dict[str, tuple[int, ...]], state: dict[str, np.ndarray]) -> None:
        """Raise ValueError naming missing or unexpected entries, or a wrong shape, of ``state`` for a model
        whose canonical entries have ``shapes``."""
        missing, unexpected = sorted(set(shapes) - set(state)), sorted(set(state) - set(shapes))
        if missing or unexpected:
            raise ValueError(f"state does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
                             f" ({len(missing)} missing, {len(unexpected)} unexpected)")
        for k, shape in shapes.items():
            if tuple(state[k].shape) != tuple(shape):
                raise ValueError(f"shape of {k}: checkpoint {tuple(state[k].shape)} vs model {tuple(shape)}")

    def world(self) -> World:
        """The data-parallel world this process belongs to (one process unless a launcher started several);
        a backend that supports data parallelism joins its process group here, on the first call."""
        return World()

    @abstractmethod
    def seed(self, seed: int) -> None:
        """Seed the framework's own RNG (weight initialisation only; all other draws come from the core)."""

    @abstractmethod
    def build_model(self, graph: Any, controller: PathController) -> Any:
        """Instantiate a ``rna_core.models`` graph; its forward takes its path from ``controller``."""

    @abstractmethod
    def sync_batch_norm(self, model: Any) -> None:
        """SyncBN: in a data-parallel world every BN layer of ``model`` normalizes (and tracks) training batches
        with the statistics of the global batch (sums all-reduced across ranks, gradient included); a no-op
        in one process. Recipes refuse it with sam / apart / apart-sam, whose Eq. 3 passes use per-rank statistics."""

    @abstractmethod
    def tensor(self, array: np.ndarray) -> Any:
        """numpy -> framework tensor on the backend's device."""

    @abstractmethod
    def numpy(self, tensor: Any) -> np.ndarray:
        """framework tensor -> numpy."""

    @abstractmethod
    def set_training(self, model: Any, training: bool) -> None:
        """Train mode (batch statistics, running-stat updates) or eval mode."""

    @abstractmethod
    def get_state(self, model: Any) -> dict[str, np.ndarray]:
        """Parameters and buffers under canonical names."""

    @abstractmethod
    def set_state(self, model: Any, state: dict[str, np.ndarray]) -> None:
        """Load canonical state; missing or unexpected names or wrong shapes raise ValueError."""

    @abstractmethod
    def get_params(self, model: Any, names: list[str]) -> dict[str, np.ndarray]:
        """The named parameters only (cheap: CTRW reads its sigmas after every step)."""

    @abstractmethod
    def set_params(self, model: Any, values: dict[str, np.ndarray]) -> None:
        """Overwrite the named parameters in place (the optimizer keeps tracking them)."""

    @abstractmethod
    def make_optimizer(self, model: Any, config: SGDConfig) -> Any: ...

    @abstractmethod
    def set_lr(self, optimizer: Any, lr: float) -> None: ...

    @abstractmethod
    def get_optimizer_state(self, optimizer: Any, model: Any) -> dict[str, np.ndarray]:
        """Momentum buffers under ``momentum.<canonical name>``."""

    @abstractmethod
    def set_optimizer_state(self, optimizer: Any, model: Any, state: dict[str, np.ndarray]) -> None: ...

    @abstractmethod
    def train_step(self, model: Any, optimizer: Any, x: Any, y: Any) -> StepResult:
        """One optimizer step on mean cross-entropy of ``model(x)``, in the model's current mode."""

    @abstractmethod
    def logits(self, model: Any, x: Any, bn: BNPerturbation | None = None) -> Any:
        """Forward without gradient (one draw of the path); ``bn`` runs every BN layer as Eq. 3 of APART with
        batch statistics (training mode required)."""

    @abstractmethod
    def gradient(self, model: Any, x: Any, y: Any, bn: BNPerturbation) -> Gradient:
        """Gradients of the mean cross-entropy of one forward (one draw) w.r.t. the trainable parameters and the
        BN perturbation, every BN layer running Eq. 3 as ``bn`` says (training mode required); no update."""

    @abstractmethod
    def apply_gradient(self, model: Any, optimizer: Any, terms: list[tuple[float, Gradient]]) -> None:
        """One optimizer step (weight decay and momentum included) with the gradient sum_i w_i g_i."""

    @abstractmethod
    def grad_norm(self, grad: Gradient) -> float:
        """||g||_2 over all trainable parameters."""

    @abstractmethod
    def shift_weights(self, model: Any, grad: Gradient, scale: float) -> Any:
        """w <- w + scale * g for every trainable parameter; returns what ``restore_weights`` needs."""

    @abstractmethod
    def restore_weights(self, model: Any, saved: Any) -> None:
        """Undo ``shift_weights`` exactly (the saved values are copied back)."""

    @abstractmethod
    def attack(self, model: Any, x: Any, y: Any, spec: AttackSpec, rng: np.random.Generator) -> Any:
        """Adversarial examples for ``spec`` in the model's current mode and path policy; every random number
        (starts, targets, Square's squares) is drawn from ``rng``."""

    @abstractmethod
    def input_gradient(self, model: Any, x: Any, y: Any) -> np.ndarray:
        """Per-example grad_x of the cross-entropy at one forward (one draw of the path), as numpy."""
