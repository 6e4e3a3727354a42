"""A user's own ``nn.Module`` in rna-core: ``randomize`` turns its BatchNorm layers into RNA slots, ``Adopted`` lets
the core's training, attacks and evaluation drive any module (randomized by rna-core, deterministic, or random in
its own way).

``randomize(module, norms="bn+in")``: every ``nn.BatchNorm2d`` (with ``replace``, also ``nn.GroupNorm``) becomes a
``NormSlot`` whose candidates are built for its channels; the BN candidate takes the layer's weight, bias and
running statistics. A forward pre-hook on the module asks the controller for the draw of each forward, so the
result stays an ordinary ``nn.Module`` (``.to()``, ``state_dict``, DDP, torchattacks, the user's own loop) that is
a random function of its input. Its BN candidates are APART-ready (``rna_bn_layout``): ``randomize(m, "bn")`` gives
a BN model on which the APART / SAM steps run. The candidates use rna-core's eps = 1e-5 and momentum = 0.1
(torch's defaults), whatever the replaced layer had.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from rna_core.apart import BNLayout
from rna_core.bounds import scaled_sigma_bounds
from rna_core.controller import Draw, DrawController, UnheldController
from rna_core.models import graph as g
from rna_core.models.ctrw import user_weight_shape
from rna_core.paths import PathSpace

from .layers import BatchNorm, NormSlot, PathState, RandomWeight
from .network import to_device

SLOT_TYPES = {"bn": (nn.BatchNorm2d,), "gn": (nn.GroupNorm,)}


def _draw(module: nn.Module, args: tuple) -> None:
    """Forward pre-hook: the draw of this forward (fresh, or the one the controller holds): the path and, with a
    random weight, its noise."""
    path, noise = module.rna_controller.next_draw()
    module.rna_state.path[:] = path
    if noise is not None:
        held = next(module.parameters())
        module.rna_state.noise = to_device(noise, held.device)


def _times_random_weight(weight: RandomWeight):
    """Forward pre-hook multiplying a module's input by CTRW's random weight (Eq. 4)."""

    def hook(module: nn.Module, args: tuple) -> tuple:
        if tuple(args[0].shape[1:]) != weight.shape:
            raise ValueError(f"CTRW's random weight has shape {weight.shape} but {type(module).__name__} gets "
                             f"inputs of shape {tuple(args[0].shape[1:])} (per example): randomize with that "
                             "input_shape")
        return (weight(args[0]), *args[1:])

    return hook


def randomize(module: nn.Module, norms: str | None = "bn+in", layer_free: bool = True, seed: int = 0,
              replace: tuple[str, ...] = ("bn",), random_weight: str | None = None,
              input_shape: tuple[int, int, int] | None = None) -> nn.Module:
    """``module`` with each layer of the kinds in ``replace`` (``bn``: nn.BatchNorm2d, ``gn``: nn.GroupNorm) turned
    into an RNA slot over ``norms`` (RNA Sec. 4: one candidate per layer per forward, drawn from a numpy Generator
    seeded by ``seed``; ``layer_free=False`` ties every layer to one choice; ``norms=None`` leaves the layers).

    ``random_weight``: CTRW's random weight x * (mu + sigma eps) (Eq. 4) on the module's input (``"input"``,
    position 0, shape ``input_shape`` = (C, H, W)) or on the input of the named submodule: the classifier head
    (``"fc"``: an nn.Linear, shape (in_features,)) or a convolution (shape ``input_shape``, its input's; the first
    convolution weights what ``"input"`` does); registered as ``rna_random_weight`` (mu, sigma initialised to 1), its
    eps drawn with the path. ``rna_sigma_bounds`` holds the CIFAR bounds [A, B] scaled to its size
    (``rna_core.bounds.scaled_sigma_bounds``), for the recipe's ``sigma_lower`` / ``sigma_upper``.

    In place; returns the module, which carries ``rna_controller`` (the sampling policies: ``frozen()``,
    ``fixed(draw)``) and ``rna_space``."""
    if hasattr(module, "rna_controller"):
        raise ValueError("this module is randomized already")
    unknown = sorted(set(replace) - set(SLOT_TYPES))
    if unknown:
        raise ValueError(f"replace: unknown layer kinds {unknown}; known: {sorted(SLOT_TYPES)}")
    kinds = tuple(t for k in replace for t in SLOT_TYPES[k])
    targets = [(name, m) for name, m in module.named_modules() if name and isinstance(m, kinds)] if norms else []
    if norms and not targets:
        raise ValueError(f"{type(module).__name__} has no {' or '.join(t.__name__ for t in kinds)} layer to randomize")
    if not norms and random_weight is None:
        raise ValueError("nothing to randomize: give norms, random_weight or both")
    space = PathSpace.uniform(norms, len(targets), layer_free) if targets else PathSpace.uniform("bn", 1)
    state = PathState(space.num_layers)
    for i, (name, layer) in enumerate(targets):
        channels = layer.num_features if isinstance(layer, nn.BatchNorm2d) else layer.num_channels
        slot = NormSlot(channels, space.candidates[i], i, state)
        _take_weights(slot, space.candidates[i], layer)
        held = [*layer.parameters(), *layer.buffers()]
        if held:
            slot.to(held[0].device)
        parent_name, _, child = name.rpartition(".")
        setattr(module.get_submodule(parent_name) if parent_name else module, child, slot)
    weight = _random_weight(module, random_weight, input_shape, state)
    module.rna_controller = DrawController(space, np.random.default_rng(seed), 0 if weight is None else
                                           math.prod(weight.shape))
    module.rna_state = state
    module.rna_space = space
    module.rna_bn_layout = _attach_bn(module, state)
    module.register_forward_pre_hook(_draw)
    if weight is not None:
        target = module if random_weight == "input" else module.get_submodule(random_weight)
        target.register_forward_pre_hook(_times_random_weight(weight))
        module.rna_sigma_bounds = scaled_sigma_bounds(math.prod(weight.shape))
    return module


def _random_weight(module: nn.Module, where: str | None, input_shape, state: PathState) -> RandomWeight | None:
    """CTRW's random weight for ``where`` (``input`` or a submodule's name), registered on ``module``."""
    if where is None:
        return None
    target = None
    if where != "input":
        try:
            target = module.get_submodule(where)
        except AttributeError:
            raise ValueError(f"random_weight={where!r}: the module has no submodule of that name") from None
    kind = ("linear" if isinstance(target, nn.Linear) else "conv" if isinstance(target, nn.Conv2d)
            else type(target).__name__)
    shape = user_weight_shape(where, kind, getattr(target, "in_features", None), input_shape)
    weight = RandomWeight(shape, 0, state)
    held = next(module.parameters(), None)
    if held is not None:
        weight.to(held.device)
    module.add_module("rna_random_weight", weight)
    return weight


def _attach_bn(module: nn.Module, state: PathState) -> BNLayout:
    """APART's layout of the BN candidates (module order; ``rna_core.apart``) and each one's slice of it."""
    names, channels, offsets, offset = [], [], [], 0
    for name, layer in module.named_modules():
        if isinstance(layer, BatchNorm):
            layer.attach(state, offset)
            names.append(name)
            channels.append(layer.channels)
            offsets.append(offset)
            offset += 2 * layer.channels
    return BNLayout(tuple(names), tuple(channels), tuple(offsets))


@torch.no_grad()
def _take_weights(slot: NormSlot, specs, layer: nn.Module) -> None:
    """The replaced layer's affine (and, for BN, running statistics) go to the candidate of its kind."""
    kind = "bn" if isinstance(layer, nn.BatchNorm2d) else "gn"
    key = next((spec.key for spec in specs if spec.kind == kind), None)
    if key is None:
        return
    target = getattr(slot, key)
    if isinstance(layer, nn.GroupNorm) and getattr(target, "groups", None) != layer.num_groups:
        return
    if layer.weight is not None and target.weight is not None:
        target.weight.copy_(layer.weight)
        target.bias.copy_(layer.bias)
    if getattr(layer, "running_mean", None) is not None:
        target.running_mean.copy_(layer.running_mean)
        target.running_var.copy_(layer.running_var)


class Adopted(nn.Module):
    """Any classifier ``module`` (images in [0, 1] -> logits) seen as rna-core's ``Network``: ``forward(x, draw)``
    runs a given draw on a module randomized by ``randomize`` and ignores it otherwise. ``holdable``: its draws
    can be held (rna-core's randomness, or none); a module random in its own way (dropout at inference, a random
    input transform) is not, and only protocols that need no held draw apply to it."""

    def __init__(self, module: nn.Module, num_classes: int, in_channels: int, random: bool) -> None:
        super().__init__()
        self.module = module
        own = getattr(module, "rna_controller", None)
        self.controller = own if own is not None else UnheldController(random)
        self.holdable = own is not None or not random
        self.graph = g.Graph(f"adopted:{type(module).__name__}", g.Seq(()), self.controller.space.num_layers,
                             in_channels, num_classes)
        self.replicas: dict[str, nn.Module] = {}
        self.precision, self.compiled = "fp32", False
        self.bn_layout = getattr(module, "rna_bn_layout", BNLayout((), (), ()))
        self.sigma_names = ["rna_random_weight.sigma"] if hasattr(module, "rna_sigma_bounds") else []

    @contextmanager
    def perturbed(self, delta: torch.Tensor, groups: int, track: bool) -> Iterator[None]:
        """APART's Eq. 3 in every BN candidate of a ``randomize``d module (``randomize(m, "bn")`` for a BN model)."""
        if not self.bn_layout.names:
            raise ValueError("APART needs rna-core's BN layers: randomize(module, norms='bn') turns the module's "
                             "nn.BatchNorm2d layers into them (one candidate: the model stays deterministic)")
        state = self.module.rna_state
        state.bn = (delta, groups, track)
        try:
            yield
        finally:
            state.bn = None

    def forward(self, x: torch.Tensor, draw: Draw | None = None) -> torch.Tensor:
        if draw is None or not hasattr(self.module, "rna_controller"):
            return self.module(x)
        with self.module.rna_controller.fixed(draw):
            return self.module(x)

    def state_dict(self, *args, **kwargs):
        return self.module.state_dict(*args, **kwargs)

    def synchronize_batch_norm(self, on: bool = True) -> None:
        if on:
            raise ValueError("sync_bn: an adopted module keeps its own layers; convert them with "
                             "torch.nn.SyncBatchNorm.convert_sync_batchnorm before randomizing")

    def drop_unselected_grads(self) -> None:
        """Nothing to do: an eager backward leaves the candidates off the path without gradient."""

    def prepare(self, precision: str = "fp32", channels_last: bool = False, compile: bool = False, **_) -> None:
        if precision != "fp32" or channels_last or compile:
            raise ValueError("an adopted module runs as given (fp32, its own layout, uncompiled): prepare the "
                             "module itself")


def differs_between_forwards(module: nn.Module, x: torch.Tensor, tries: int = 3) -> bool:
    """True when forwards on the same input (eval mode) give different logits: the module is randomized."""
    was = module.training
    module.eval()
    with torch.no_grad():
        first = module(x)
        out = any(not torch.equal(first, module(x)) for _ in range(tries))
    module.train(was)
    return out
