"""The Backend: the framework primitives the core's algorithms are written against.

Batches and random draws cross it as numpy arrays or as the backend's tensors (made by ``ops.tensor``); models,
optimizers and tensors on the other side are opaque handles. State crosses it as ``dict[str, np.ndarray]`` under
canonical, torch-style names, so one safetensors file serves every backend. The primitives
(docs/architecture.md, "Adding a backend"):

- framework: ``name``, ``ops`` (``rna_core.ops.Ops``), ``describe``, ``world``;
- models: ``build_model`` (a ``rna_core.models`` graph), ``adopt`` (a user's module), ``prepare`` (how it runs);
  a model is a ``rna_core.model.Model``;
- parameters: ``get_state`` / ``set_state`` (host arrays by canonical name: checkpoints, CTRW's sigmas, the
  optimizer's momentum), ``get_params`` / ``set_params`` (the trainable parameters as device tensors);
- computation on one draw: ``logits`` and ``value_and_grad`` (a scalar loss of the logits and its gradients with
  respect to any of the parameters, the input and APART's BN perturbation); ``jacobian`` derives from it;
- the optimizer: ``make_optimizer`` and ``update`` (one step with sum_i w_i g_i, leaving a parameter no term
  used, an RNA candidate off the step's path, untouched);
- input: ``loader``, an image folder's batches decoded in parallel (the core's threads; the framework's engine
  where the backend has one).

Losses, training methods, attacks and evaluation are written once in the core on top of these. A backend may
override a derived method with a fused one where a benchmark shows it pays (torch's ``jacobian``: one forward
and K backwards); the core's version is the reference the tests hold the override to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .controller import Draw, DrawController
from .data.pipeline import thread_loader
from .distributed import World
from .losses import LOGITS, Loss
from .ops import Ops, T
from .validation import ConfigError

PARAMS, INPUT, DELTA = "params", "input", "delta"
WRT = (PARAMS, INPUT, DELTA)


@dataclass(frozen=True)
class SGDConfig:
    """SGD with heavy-ball momentum and L2 weight decay on every parameter, torch.optim.SGD's update:
    g = grad + wd * w; b = momentum * b + g; w = w - lr * b."""

    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4


@dataclass(frozen=True)
class Speed:
    """How a model runs (recipe keys of the same names; weights, state and checkpoints stay float32):
    ``precision`` ``fp32``, ``bf16`` or ``fp16`` mixed precision for every forward (logits, losses and input
    gradients in float32); ``channels_last`` NHWC activations; ``compile`` compiled forwards and backwards that
    serve every path, ``compile_mode`` the compiler's mode; ``sync_bn`` SyncBN in a data-parallel world (every BN
    layer normalizes training batches with the global batch's statistics)."""

    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    compile_mode: str = "default"
    sync_bn: bool = False


@dataclass
class Grad:
    """What ``value_and_grad`` computes, every tensor on the backend's device: ``loss`` the reduced (scalar) loss,
    ``per`` its per-example values (N,), ``logits`` (N, K) of the (first) input; and the gradients asked for:
    ``params`` one tensor per trainable parameter (``get_params``' order; None for a parameter the forward did
    not use, as an RNA candidate off the path), ``input`` d loss / dx (a tuple for several inputs), ``delta`` d
    loss / d delta of the draw's BN perturbation."""

    loss: T
    per: T
    logits: T
    params: list[T | None] | None = None
    input: T | None = None
    delta: T | None = None


def check_state(shapes: dict[str, tuple[int, ...]], state: dict[str, np.ndarray], strict: bool = True) -> None:
    """Raise ValueError naming missing (if ``strict``) or unexpected entries, or a wrong shape, of ``state`` for a
    model whose canonical entries have ``shapes``."""
    missing = sorted(set(shapes) - set(state)) if strict else []
    unexpected = sorted(set(state) - set(shapes))
    if missing or unexpected:
        raise ValueError(f"state does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
                         f" ({len(missing)} missing, {len(unexpected)} unexpected)")
    for k, v in state.items():
        if tuple(v.shape) != tuple(shapes[k]):
            raise ValueError(f"shape of {k}: checkpoint {tuple(v.shape)} vs model {tuple(shapes[k])}")


class Backend(ABC):
    """A framework behind the core. Subclasses set ``name`` and ``ops``."""

    name: str = "abstract"
    ops: Ops

    # -- framework ------------------------------------------------------------------------------------------------
    @abstractmethod
    def describe(self) -> dict[str, str]:
        """What runs the numbers: backend, framework version, device, execution mode (for reports)."""

    def world(self) -> World:
        """The data-parallel world this process belongs to (one process unless a launcher started several);
        a backend that supports data parallelism joins its process group here, on the first call."""
        return World()

    # -- models ---------------------------------------------------------------------------------------------------
    @abstractmethod
    def build_model(self, graph: Any, controller: DrawController, seed: int = 0) -> Any:
        """Instantiate a ``rna_core.models`` graph with weights initialised from ``seed`` (the framework's own
        RNG serves weight initialisation only; every other random number comes from the core)."""

    def adopt(self, module: Any, num_classes: int, in_channels: int, random: bool = False) -> tuple[Any, Backend]:
        """A user's own classifier (images in [0, 1] -> logits) as a model the core can train, attack and
        evaluate, and the backend to run it with (the one of the device it lives on). Its draws are those of
        rna-core's ``randomize``, if it made the module; else it has none and is ``random`` in its own way or not
        (the core detects which: ``classifier.adopt``), and ``holdable`` says whether its draws can be held."""
        raise NotImplementedError(f"the {self.name} backend cannot adopt a user's model")

    def prepare(self, model: Any, speed: Speed) -> None:
        """Run ``model`` as ``speed`` says; a backend without one of its options raises ConfigError naming it."""
        if speed.precision != "fp32" or speed.channels_last or speed.compile:
            raise ConfigError(f"the {self.name} backend runs fp32, channels-first, uncompiled only (got precision="
                              f"{speed.precision!r}, channels_last={speed.channels_last}, compile={speed.compile})")
        if speed.sync_bn and self.world().size > 1:
            raise ConfigError(f"sync_bn: the {self.name} backend has no SyncBN")

    # -- parameters -----------------------------------------------------------------------------------------------
    @abstractmethod
    def get_state(self, model: Any, names: Iterable[str] | None = None, optimizer: Any = None
                  ) -> dict[str, np.ndarray]:
        """Parameters and buffers under canonical names (only ``names`` if given: CTRW reads its sigmas after every
        step). With ``optimizer`` (one ``make_optimizer`` made for ``model``): its momentum buffers instead, under
        ``momentum.<canonical name>`` (only those that exist, as torch holds them)."""

    @abstractmethod
    def set_state(self, model: Any, state: dict[str, np.ndarray], strict: bool = True, optimizer: Any = None
                  ) -> None:
        """Load canonical state in place (the optimizer keeps tracking the parameters). ``strict``: ``state`` must
        name every entry; otherwise only the given entries are written. Unknown names or wrong shapes raise
        ValueError (``check_state``). With ``optimizer``: its momentum buffers (``get_state``'s names)."""

    @abstractmethod
    def get_params(self, model: Any) -> list[T]:
        """Copies of the trainable parameters' values, on the device, in ``Grad.params``' order."""

    @abstractmethod
    def set_params(self, model: Any, values: list[T]) -> None:
        """Write ``values`` (``get_params``' order and shapes) into the trainable parameters, in place."""

    # -- computation on one draw ----------------------------------------------------------------------------------
    @abstractmethod
    def logits(self, model: Any, x: T, draw: Draw) -> T:
        """Forward without gradient on ``draw`` (its path, noise and, in training mode, BN perturbation)."""

    @abstractmethod
    def value_and_grad(self, model: Any, loss: Loss, x: T | tuple[T, ...], y: T, w: T, draw: Draw,
                       wrt: tuple[str, ...] = (PARAMS,)) -> Grad:
        """``loss`` of the logits of ``x`` (a tuple: each forwarded on ``draw``, the loss gets the tuple of
        logits) and its gradients with respect to ``wrt`` (``PARAMS``, ``INPUT``, ``DELTA``: the draw's BN
        perturbation) from one backward, in the model's current mode. Gradients with respect to the parameters
        are the data-parallel world's mean; under fp16 they are the loss-scaled ones ``update`` expects."""

    def jacobian(self, model: Any, x: T, draw: Draw) -> tuple[T, T]:
        """(logits (N, K), d logits / dx as (N, K, ...)) on one draw: one ``value_and_grad`` per class."""
        ops, rows, logits, k = self.ops, [], None, model.num_classes
        labels = ops.tensor(np.zeros(x.shape[0], np.int64))  # unused by the loss
        for j in range(k):
            w = ops.one_hot(ops.tensor(np.full(x.shape[0], j, np.int64)), k, x)
            g = self.value_and_grad(model, LOGITS, x, labels, w, draw, (INPUT,))
            rows.append(g.input)
            logits = g.logits
        return logits, ops.stack(rows, 1)

    # -- optimizer ------------------------------------------------------------------------------------------------
    @abstractmethod
    def make_optimizer(self, model: Any, config: SGDConfig) -> Any: ...

    @abstractmethod
    def update(self, model: Any, optimizer: Any, terms: list[tuple[float, Grad]], lr: float) -> None:
        """One optimizer step at learning rate ``lr`` (weight decay and momentum included) with the gradient
        sum_i w_i g_i of ``terms``; a parameter no term has a gradient for is left untouched (no weight decay, no
        momentum), as torch.optim.SGD leaves one whose gradient is None."""

    # -- input --------------------------------------------------------------------------------------------------------
    def loader(self, samples: Any, indices: np.ndarray, batch_size: int,
               workers: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Batches (uint8 N x C x H x W, int64 labels) of ``samples[i]`` for ``indices`` in order, the last
        incomplete one dropped, decoded by ``workers`` in parallel (``rna_core.data.pipeline``): the core's thread
        engine here; torch and MindSpore run their own workers (the same batches, tests hold them to it)."""
        return thread_loader(samples, indices, batch_size, workers)
