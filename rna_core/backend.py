"""The Backend interface: everything the core's algorithms ask of a framework.

Batches and random draws cross it as numpy arrays; models, optimizers and tensors on the other side are opaque
handles. State crosses it as ``dict[str, np.ndarray]`` under canonical, torch-style names, so one safetensors file
serves every backend. A backend implements five groups (see docs/architecture.md, "Adding a backend"):

1. framework: ``name``, ``ops`` (the attacks' array operations), ``seed``, ``describe``, ``world``;
2. models: ``build_model``, ``set_training``, ``get_state`` / ``set_state``, ``sync_batch_norm``;
3. optimizer: ``make_optimizer``, ``set_lr``, ``get_optimizer_state`` / ``set_optimizer_state``;
4. training step and gradient algebra: ``train_step``, ``gradient``, ``apply_gradient``, ``shift_weights`` /
   ``restore_weights``;
5. inference: ``logits`` and ``oracle`` (what the attacks see of a model).
``tensor``, ``numpy``, ``grad_norm``, ``attack`` and ``input_gradient`` are derived from these.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .apart import BNPerturbation
from .attacks import CE, AttackSpec, Ops, Oracle, run
from .controller import DrawController
from .distributed import World
from .validation import ConfigError


@dataclass(frozen=True)
class SGDConfig:
    """SGD with heavy-ball momentum and L2 weight decay on every parameter, torch.optim.SGD's update:
    g = grad + wd * w; b = momentum * b + g; w = w - lr * b."""

    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4


@dataclass
class StepResult:
    """A training step's mean loss and correct count: Python numbers, or 0-d tensors of the backend left on its
    device (``float()`` reads them; the training loop reads its running sums every ``log_every`` steps)."""

    loss: Any
    correct: Any
    count: int


@dataclass
class Gradient:
    """One pass's gradient of the mean cross-entropy: ``params`` is the backend's handle (one tensor per trainable
    parameter, on its device; None for a parameter the pass did not use), ``delta`` the gradient w.r.t. the BN
    perturbation vector (numpy, see ``rna_core.apart``); ``loss``, ``correct``, ``count`` describe the pass."""

    params: Any
    delta: np.ndarray
    loss: float
    correct: int
    count: int


class Backend(ABC):
    """A framework behind the core. Subclasses set ``name`` and ``ops``."""

    name: str = "abstract"
    ops: Ops

    # -- 1. framework ---------------------------------------------------------------------------------------------
    @abstractmethod
    def seed(self, seed: int) -> None:
        """Seed the framework's own RNG (weight initialisation only; all other draws come from the core)."""

    @abstractmethod
    def describe(self) -> dict[str, str]:
        """What runs the numbers: backend, framework version, device, execution mode (for reports)."""

    def world(self) -> World:
        """The data-parallel world this process belongs to (one process unless a launcher started several);
        a backend that supports data parallelism joins its process group here, on the first call."""
        return World()

    def tensor(self, array: np.ndarray) -> Any:
        """numpy -> framework tensor on the backend's device."""
        return self.ops.tensor(array)

    def numpy(self, tensor: Any) -> np.ndarray:
        return self.ops.numpy(tensor)

    # -- 2. models ------------------------------------------------------------------------------------------------
    @abstractmethod
    def build_model(self, graph: Any, controller: DrawController) -> Any:
        """Instantiate a ``rna_core.models`` graph; its forward takes its draw from ``controller``."""

    @abstractmethod
    def set_training(self, model: Any, training: bool) -> None:
        """Train mode (batch statistics, running-stat updates) or eval mode."""

    @abstractmethod
    def get_state(self, model: Any, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Parameters and buffers under canonical names (only ``names`` if given: CTRW reads its sigmas after every
        step)."""

    @abstractmethod
    def set_state(self, model: Any, state: dict[str, np.ndarray], strict: bool = True) -> None:
        """Load canonical state in place (the optimizer keeps tracking the parameters). ``strict``: ``state`` must
        name every entry; otherwise only the given entries are written. Unknown names or wrong shapes raise
        ValueError (``check_state``)."""

    def prepare(self, model: Any, precision: str = "fp32", channels_last: bool | None = None,
                compile: bool = False, compile_mode: str = "default") -> None:
        """How ``model`` runs (recipe keys ``precision``, ``channels_last``, ``compile``; weights, state and
        checkpoints stay float32): ``precision`` ``fp32``, ``bf16`` or ``fp16`` mixed precision for every forward
        (training, attacks, evaluation; logits, losses and input gradients in float32); ``channels_last`` NHWC
        activations (None: off); ``compile`` compiled forwards and backwards that serve every
        path, ``compile_mode`` the compiler's mode. A backend without one of these raises ConfigError naming it."""
        if precision != "fp32" or channels_last or compile:
            raise ConfigError(f"the {self.name} backend runs fp32, channels-first, uncompiled only (got precision="
                              f"{precision!r}, channels_last={channels_last}, compile={compile})")

    @abstractmethod
    def sync_batch_norm(self, model: Any) -> None:
        """SyncBN: in a data-parallel world every BN layer of ``model`` normalizes (and tracks) training batches
        with the statistics of the global batch (sums all-reduced across ranks, gradient included); a no-op
        in one process. Recipes refuse it with sam / apart / apart-sam, whose Eq. 3 passes use per-rank statistics."""

    @staticmethod
    def check_state(shapes: dict[str, tuple[int, ...]], state: dict[str, np.ndarray], strict: bool = True) -> None:
        """Raise ValueError naming missing (if ``strict``) or unexpected entries, or a wrong shape, of ``state``
        for a model whose canonical entries have ``shapes``."""
        missing = sorted(set(shapes) - set(state)) if strict else []
        unexpected = sorted(set(state) - set(shapes))
        if missing or unexpected:
            raise ValueError(f"state does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
                             f" ({len(missing)} missing, {len(unexpected)} unexpected)")
        for k, v in state.items():
            if tuple(v.shape) != tuple(shapes[k]):
                raise ValueError(f"shape of {k}: checkpoint {tuple(v.shape)} vs model {tuple(shapes[k])}")

    # -- 3. optimizer ---------------------------------------------------------------------------------------------
    @abstractmethod
    def make_optimizer(self, model: Any, config: SGDConfig) -> Any: ...

    @abstractmethod
    def set_lr(self, optimizer: Any, lr: float) -> None: ...

    @abstractmethod
    def get_optimizer_state(self, optimizer: Any, model: Any) -> dict[str, np.ndarray]:
        """Momentum buffers under ``momentum.<canonical name>`` (only those that exist)."""

    @abstractmethod
    def set_optimizer_state(self, optimizer: Any, model: Any, state: dict[str, np.ndarray]) -> None: ...

    # -- 4. training step and gradient algebra ----------------------------------------------------------------------
    @abstractmethod
    def train_step(self, model: Any, optimizer: Any, x: Any, y: Any) -> StepResult:
        """One optimizer step on mean cross-entropy of ``model(x)``, in the model's current mode."""

    @abstractmethod
    def gradient(self, model: Any, x: Any, y: Any, bn: BNPerturbation) -> Gradient:
        """Gradients of the mean cross-entropy of one forward (one draw) w.r.t. the trainable parameters and the
        BN perturbation, every BN layer running Eq. 3 as ``bn`` says (training mode required); no update."""

    @abstractmethod
    def apply_gradient(self, model: Any, optimizer: Any, terms: list[tuple[float, Gradient]]) -> None:
        """One optimizer step (weight decay and momentum included) with the gradient sum_i w_i g_i."""

    @abstractmethod
    def shift_weights(self, model: Any, grad: Gradient, scale: float) -> Any:
        """w <- w + scale * g for every trainable parameter; returns what ``restore_weights`` needs."""

    @abstractmethod
    def restore_weights(self, model: Any, saved: Any) -> None:
        """Undo ``shift_weights`` exactly (the saved values are copied back)."""

    def grad_norm(self, grad: Gradient) -> float:
        """||g||_2 over all trainable parameters (one host read)."""
        total = sum((g * g).sum() for g in grad.params if g is not None)
        return float(np.sqrt(self.ops.numpy(total)))

    # -- 5. inference and attacks ---------------------------------------------------------------------------------
    @abstractmethod
    def logits(self, model: Any, x: Any, bn: BNPerturbation | None = None) -> Any:
        """Forward without gradient (one draw); ``bn`` runs every BN layer as Eq. 3 of APART with batch statistics
        (training mode required)."""

    @abstractmethod
    def oracle(self, model: Any) -> Oracle:
        """What the attacks see of ``model`` (``rna_core.attacks.Oracle``)."""

    def adopt(self, module: Any, num_classes: int, in_channels: int, probe: np.ndarray | None = None
              ) -> tuple[Any, Backend]:
        """A user's own classifier (images in [0, 1] -> logits) as a model the core can train, attack and
        evaluate, and the backend to run it with (the one of the device it lives on). The model's ``holdable``
        says whether its draws can be held (rna-core's randomness or none) and its controller's ``is_random``
        whether it is random (detected on ``probe`` images for randomness rna-core does not draw)."""
        raise NotImplementedError(f"the {self.name} backend cannot adopt a user's model")

    def attack(self, model: Any, x: Any, y: Any, spec: AttackSpec, rng: np.random.Generator) -> Any:
        """Adversarial examples for ``spec`` in the model's current mode and path policy; every random number
        (starts, targets, Square's squares) is drawn from ``rng``."""
        return run(self.oracle(model), x, y, spec, rng)

    def input_gradient(self, model: Any, x: Any, y: Any) -> np.ndarray:
        """Per-example grad_x of the cross-entropy at one forward (one draw), as numpy."""
        oracle = self.oracle(model)
        return self.numpy(oracle.loss_grad(CE, x, y, y, oracle.draw())[2])
