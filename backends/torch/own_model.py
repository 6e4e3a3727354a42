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

import numpy as np
import torch
from torch import nn

from rna_core.apart import BNLayout
from rna_core.bounds import scaled_sigma_bounds
from rna_core.controller import DrawController, UnheldController
from rna_core.models.ctrw import user_weight_shape
from rna_core.paths import PathSpace

from .layers import BatchNorm, DrawState, NormSlot, RandomWeight
from .network import Network

SLOT_TYPES = {"bn": (nn.BatchNorm2d,), "gn": (nn.GroupNorm,)}


def _draw(module: nn.Module, args: tuple) -> None:
    """Forward pre-hook: the draw of this forward (fresh, or the one the controller holds): the path and, with a
    random weight, its noise; nothing when rna-core's ``Network`` wrote the draw of this forward already."""
    if module.rna_state.pending:
        return
    path, noise = module.rna_controller.next_draw()
    module.rna_state.write(path, noise, None, args[0].device)


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
    state = DrawState(space.num_layers, 0, 0)
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
    module.rna_bn_layout = _bn_layout(module)
    module.register_forward_pre_hook(_draw)
    if weight is not None:
        target = module if random_weight == "input" else module.get_submodule(random_weight)
        target.register_forward_pre_hook(_times_random_weight(weight))
        module.rna_sigma_bounds = scaled_sigma_bounds(math.prod(weight.shape))
    return module


def _random_weight(module: nn.Module, where: str | None, input_shape, state: DrawState) -> RandomWeight | None:
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


def _bn_layout(module: nn.Module) -> BNLayout:
    """APART's layout of the BN candidates (module order; ``rna_core.apart``)."""
    names, channels, offsets, offset = [], [], [], 0
    for name, layer in module.named_modules():
        if isinstance(layer, BatchNorm):
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


def adopt_module(module: nn.Module, num_classes: int, in_channels: int, probe: np.ndarray | None, ops) -> Network:
    """A ``Network`` around ``module`` (its one child ``module``): the draws of a ``randomize``d module, or none for a
    module that is deterministic or random in its own way (detected on ``probe`` images: two forwards on the same
    input that differ); only a module whose draws rna-core holds (or that has none) is ``holdable``."""
    own = getattr(module, "rna_controller", None)
    if own is not None:
        controller, state, layout = own, module.rna_state, module.rna_bn_layout
        sigmas = ("rna_random_weight.sigma",) if hasattr(module, "rna_sigma_bounds") else ()
        random = own.is_random
    else:
        random = probe is not None and differs_between_forwards(module, ops.tensor(probe))
        controller, state, layout, sigmas = UnheldController(random), DrawState(1, 0, 0), BNLayout((), (), ()), ()
    return Network([("module", module)], state, controller, num_classes, in_channels, layout, sigmas,
                   own is not None or not random, prefix="module.")


def differs_between_forwards(module: nn.Module, x: torch.Tensor, tries: int = 3) -> bool:
    """True when forwards on the same input (eval mode) give different logits: the module is randomized."""
    was = module.training
    module.eval()
    with torch.no_grad():
        first = module(x)
        out = any(not torch.equal(first, module(x)) for _ in range(tries))
    module.train(was)
    return out
