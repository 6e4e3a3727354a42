"""A user's own ``nn.Module`` in rna-core: ``randomize`` carries out the core's plan (``rna_core.own_model``) on it,
``adopt_module`` makes any classifier module a ``network.Network`` the core's training, attacks and evaluation drive
(randomized by rna-core, deterministic, or random in its own way).

``randomize(module, norms="bn+in")``: every ``nn.BatchNorm2d`` (with ``replace``, also ``nn.GroupNorm``) becomes a
``NormSlot`` whose candidates are built for its channels; the candidate of the layer's kind takes its weight, bias
(and running statistics). A forward pre-hook on the module asks the controller for the draw of each forward, so
the result stays an ordinary ``nn.Module`` (``.to()``, ``state_dict``, DDP, torchattacks, the user's own loop) that
is a random function of its input. Its BN candidates are APART-ready (``module.rna.bn_layout``):
``randomize(m, "bn")`` gives a BN model on which the APART / SAM steps run. The candidates use rna-core's eps = 1e-5
and momentum = 0.1 (torch's defaults), whatever the replaced layer had.
"""

from __future__ import annotations

import torch
from torch import nn

from rna_core.apart import BNLayout
from rna_core.controller import UnheldController
from rna_core.own_model import Layer, Plan, Randomized, Target, plan

from .layers import DrawState, NormSlot, RandomWeight
from .network import Network

TYPES = {"bn": nn.BatchNorm2d, "gn": nn.GroupNorm}


def _draw(module: nn.Module, args: tuple) -> None:
    """Forward pre-hook: the draw of this forward (fresh, or the one the controller holds): the path and, with a
    random weight, its noise; nothing when rna-core's ``Network`` wrote the draw of this forward already."""
    rna = module.rna
    if not rna.state.pending:
        path, noise = rna.controller.next_draw()
        rna.state.write(path, noise, None, args[0].device)


def _times_random_weight(weight: RandomWeight):
    """Forward pre-hook multiplying a module's input by CTRW's random weight (Eq. 4)."""

    def hook(module: nn.Module, args: tuple) -> tuple:
        if tuple(args[0].shape[1:]) != weight.shape:
            raise ValueError(f"CTRW's random weight has shape {weight.shape} but {type(module).__name__} gets "
                             f"inputs of shape {tuple(args[0].shape[1:])} (per example): randomize with that "
                             "input_shape")
        return (weight(args[0]), *args[1:])

    return hook


def find_layers(module: nn.Module, replace: tuple[str, ...]) -> list[Layer]:
    """The normalization layers of the kinds ``replace`` (``TYPES``) in module order."""
    out = []
    for name, m in module.named_modules():
        if name and isinstance(m, nn.BatchNorm2d) and "bn" in replace:
            out.append(Layer(name, "bn", m.num_features))
        elif name and isinstance(m, nn.GroupNorm) and "gn" in replace:
            out.append(Layer(name, "gn", m.num_channels, m.num_groups))
    return out


def find_target(module: nn.Module, name: str | None) -> Target | None:
    """What CTRW's random weight named ``name`` precedes."""
    if name is None or name == "input":
        return None if name is None else Target("input", "input")
    try:
        target = module.get_submodule(name)
    except AttributeError:
        raise ValueError(f"random_weight={name!r}: the module has no submodule of that name") from None
    if isinstance(target, nn.Linear):
        return Target(name, "linear", target.in_features)
    return Target(name, "conv" if isinstance(target, nn.Conv2d) else type(target).__name__)


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
    eps drawn with the path.

    In place (every check first: an error leaves the module unchanged); returns the module, which carries ``rna``
    (``rna_core.own_model.Randomized``: the plan, ``space``, ``bn_layout``, ``sigma_bounds``) and ``rna_controller``
    (the sampling policies: ``frozen()``, ``fixed(draw)``)."""
    if isinstance(getattr(module, "rna", None), Randomized):
        raise ValueError("this module is randomized already")
    p = plan(find_layers(module, tuple(replace)), norms, layer_free, seed, find_target(module, random_weight),
             input_shape, compiled=False, replace=tuple(replace))
    carry_out(module, p)
    return module


def carry_out(module: nn.Module, p: Plan) -> None:
    """``p`` on ``module``: the slots in the layers' places, the random weight and its hook, the draw's hook."""
    state = DrawState(p.space.num_layers, p.noise_size, p.layout.size)
    held = next(iter(module.parameters()), None)
    device = held.device if held is not None else torch.device("cpu")
    for i, layer in enumerate(p.layers):
        old = module.get_submodule(layer.name)
        slot = NormSlot(layer.channels, p.space.candidates[i], i, state).to(device)
        if p.takes[i] is not None:
            _copy_weights(old, getattr(slot, p.takes[i]))
        parent, _, child = layer.name.rpartition(".")
        setattr(module.get_submodule(parent) if parent else module, child, slot)
    controller = p.controller()
    at = _weight_holder(module, p.weight[0]) if p.weight is not None else ""
    module.rna = Randomized(p, controller, state, weight_at=at)
    module.rna_controller = controller
    module.register_forward_pre_hook(_draw)  # before the weight's hook: the noise of this forward
    if p.weight is not None:
        name, shape = p.weight
        weight = RandomWeight(shape, 0, state).to(device)
        module.get_submodule(at).add_module("rna_random_weight", weight)
        target = module if name == "input" else module.get_submodule(name)
        target.register_forward_pre_hook(_times_random_weight(weight))


def _weight_holder(module: nn.Module, target: str) -> str:
    """Where the random weight is registered: on ``module`` ("") unless it is an ``nn.Sequential``, which would run
    it as one more layer; then on the submodule it weights (the input's: the first leaf)."""
    if not isinstance(module, nn.Sequential):
        return ""
    name, holder = ("", module) if target == "input" else (target, module.get_submodule(target))
    while isinstance(holder, nn.Sequential):
        first = next(iter(holder.named_children()), None)
        if first is None:
            raise ValueError("random_weight: an empty nn.Sequential has no layer to hold the weight")
        name, holder = (f"{name}.{first[0]}" if name else first[0]), first[1]
    return name


@torch.no_grad()
def _copy_weights(layer: nn.Module, target: nn.Module) -> None:
    """The replaced layer's affine (and, for BN, running statistics) into the candidate the plan names."""
    if layer.weight is not None and target.weight is not None:
        target.weight.copy_(layer.weight)
        target.bias.copy_(layer.bias)
    if isinstance(layer, nn.BatchNorm2d) and layer.running_mean is not None:
        target.running_mean.copy_(layer.running_mean)
        target.running_var.copy_(layer.running_var)


def adopt_module(module: nn.Module, num_classes: int, in_channels: int, random: bool) -> Network:
    """A ``Network`` around ``module`` (its one child ``module``): the draws of a ``randomize``d module, or none for a
    module that is deterministic or (``random``) random in its own way; only a module whose draws rna-core holds (or
    that has none) is ``holdable``."""
    rna = getattr(module, "rna", None)
    if isinstance(rna, Randomized):
        return Network([("module", module)], rna.state, rna.controller, num_classes, in_channels, rna.bn_layout,
                       rna.sigma_names, True, prefix="module.")
    return Network([("module", module)], DrawState(1, 0, 0), UnheldController(random), num_classes, in_channels,
                   BNLayout((), (), ()), (), not random, prefix="module.")
