"""A user's own MindSpore ``nn.Cell`` (images in [0, 1] -> logits) in rna-core.

``randomize(cell, norms="bn+in", graph_mode=...)`` carries out the core's plan (``rna_core.own_model``): every
``nn.BatchNorm2d`` of the cell becomes an RNA slot (candidates built for its channels, the BN candidate taking the
layer's gamma, beta and moving statistics), in place. The slots read the draw from one ``layers.DrawState``
(``cell.rna.state``): the path Parameter in compiled graphs
(``graph_mode=True``: ``ms.jit`` or GRAPH_MODE), so one graph serves every path, its host copy eagerly. For eager
runs a forward pre-hook draws the path of every call; a cell randomized for compiled runs has no hook (MindSpore
parses hooks into the graph and fails), so call ``next_draw(cell)`` before each call (rna-core's programs write the
draw themselves). CTRW's noise and APART's BN perturbation reach the cell's layers through the same state (a
user's ``construct(x)`` passes nothing on).

``adopt_cell`` makes any cell a ``network.Network`` (its one child ``module``): the draws of a randomized cell, or
none for a cell that is deterministic or random in its own way (detected by the core, ``classifier.adopt``; only
the protocols that hold no draw apply to it).
"""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import nn

from rna_core.apart import BNLayout
from rna_core.controller import UnheldController
from rna_core.own_model import Layer, Plan, Randomized, Target, plan

from .layers import DrawState, NormSlot, RandomWeight, unique_parameter_names
from .network import Network


@ms.jit_class
class Held:
    """Cells held by reference, not as children: their parameters keep the names they have where registered."""

    def __init__(self, layer: nn.Cell, weight: RandomWeight) -> None:
        self.layer, self.weight = layer, weight


class Weighted(nn.Cell):
    """A user's dense or convolution layer behind CTRW's random weight (Eq. 4): ``layer(x * (mu + sigma eps))``.
    It takes the layer's place and its parameters' names (``fc.weight``); the layer and the weight (registered on
    the cell as ``rna_random_weight``) are ``Held``."""

    def __init__(self, layer: nn.Cell, weight: RandomWeight) -> None:
        super().__init__()
        for name, param in layer.parameters_and_names():
            if "." not in name:
                setattr(self, name, param)
        self.held = Held(layer, weight)
        self.shape = weight.shape

    def construct(self, x):
        if x.shape[1:] != self.shape:  # static shapes: checked when compiled
            raise ValueError("CTRW's random weight and the input of the layer it weights differ in shape (per "
                             "example): randomize with the layer's input_shape")
        return self.held.layer(self.held.weight(x))


def next_draw(cell: nn.Cell) -> np.ndarray:
    """Draw the path (and CTRW noise) of the next forward of a randomized ``cell`` (fresh, or the one its controller
    holds) and write it where the slots read it; returns the path. The pre-hook does this for eager calls."""
    path, noise = cell.rna.controller.next_draw()
    cell.rna.state.write(path, noise, None)
    return path.astype(np.int32)


def _draw(cell: nn.Cell, args: tuple) -> None:
    """Forward pre-hook of an eager randomized cell: the draw of this call, unless rna-core wrote it already."""
    if not cell.rna.state.pending:
        next_draw(cell)


def _times_random_weight(weight: RandomWeight):
    """Forward pre-hook multiplying an eager cell's input by CTRW's random weight."""

    def hook(cell: nn.Cell, args: tuple) -> tuple:
        if tuple(args[0].shape[1:]) != weight.shape:
            raise ValueError(f"CTRW's random weight has shape {weight.shape} but the cell gets inputs of shape "
                             f"{tuple(args[0].shape[1:])} (per example): randomize with that input_shape")
        return (weight(args[0]), *args[1:])

    return hook


def _child(cell: nn.Cell, name: str) -> nn.Cell | None:
    """The sub-cell at dotted path ``name``, or None."""
    for part in name.split("."):
        cell = cell.name_cells().get(part) if cell is not None else None
    return cell


def _replace(cell: nn.Cell, name: str, new: nn.Cell) -> None:
    """Put ``new`` in place of the child ``name`` (a dotted path) of ``cell``."""
    parent_name, _, child = name.rpartition(".")
    parent = _child(cell, parent_name) if parent_name else cell
    if isinstance(parent, nn.SequentialCell | nn.CellList):
        parent[int(child)] = new  # its own setter: a SequentialCell also keeps a list of its cells
    else:
        setattr(parent, child, new)


def find_layers(cell: nn.Cell, replace: tuple[str, ...]) -> list[Layer]:
    """The ``nn.BatchNorm2d`` cells (kind ``bn``, the one kind MindSpore's user cells are randomized at) in cell
    order."""
    if "bn" not in replace:
        return []
    return [Layer(name, "bn", c.num_features) for name, c in cell.cells_and_names()
            if name and isinstance(c, nn.BatchNorm2d)]


def find_target(cell: nn.Cell, name: str | None) -> Target | None:
    """What CTRW's random weight named ``name`` precedes."""
    if name is None or name == "input":
        return None if name is None else Target("input", "input")
    target = _child(cell, name)
    if target is None:
        raise ValueError(f"random_weight={name!r}: the cell has no sub-cell of that name")
    if isinstance(target, nn.Dense):
        return Target(name, "linear", target.in_channels)
    return Target(name, "conv" if isinstance(target, nn.Conv2d) else type(target).__name__)


def _slot(bn: nn.BatchNorm2d, specs, i: int, state: DrawState, takes: str | None) -> NormSlot:
    """The slot replacing ``bn``; the candidate ``takes`` takes the layer's affine and statistics."""
    slot = NormSlot(bn.num_features, specs, i, state)
    if takes is not None:
        target = getattr(slot, takes)
        for mine, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                             ("running_var", "moving_variance")):
            if getattr(target, mine, None) is not None and getattr(bn, theirs, None) is not None:
                getattr(target, mine).copy_(getattr(bn, theirs).value())
    return slot


def randomize(cell: nn.Cell, norms: str | None = "bn+in", layer_free: bool = True, seed: int = 0,
              graph_mode: bool = False, random_weight: str | None = None,
              input_shape: tuple[int, int, int] | None = None) -> nn.Cell:
    """``cell`` with every ``nn.BatchNorm2d`` turned into an RNA slot over ``norms`` (see the module docstring;
    ``norms=None`` leaves them), in place (every check first: an error leaves the cell unchanged); it carries
    ``rna`` (``rna_core.own_model.Randomized``: the plan, ``space``, ``bn_layout`` (its BN candidates take APART's
    perturbation: ``randomize(c, "bn")`` gives a BN model APART trains), ``sigma_bounds``) and ``rna_controller``
    (the sampling policies). ``graph_mode``: the cell will run compiled (the backend's ``mode="graph"``), else
    eagerly.

    ``random_weight``: CTRW's random weight x * (mu + sigma eps) (Eq. 4) before a named ``nn.Dense`` (shape
    (in_channels,)) or ``nn.Conv2d`` (shape ``input_shape``: its input's (C, H, W); the first convolution weights
    the image), or on the cell's input (``"input"``, eager cells only: a compiled cell cannot run the hook, name its
    first convolution instead); registered as ``rna_random_weight``, its eps drawn with the path."""
    if isinstance(getattr(cell, "rna", None), Randomized):
        raise ValueError("this cell is randomized already")
    p = plan(find_layers(cell, ("bn",)), norms, layer_free, seed, find_target(cell, random_weight), input_shape,
             compiled=graph_mode)
    carry_out(cell, p, graph_mode)
    return cell


def carry_out(cell: nn.Cell, p: Plan, graph_mode: bool) -> None:
    """``p`` on ``cell``: the slots in the layers' places, the random weight (a hook or a ``Weighted`` layer), the
    draw's hook (eager cells)."""
    state = DrawState(p.space.num_layers, p.noise_size, p.layout.size)
    state.compiled = graph_mode
    for i, layer in enumerate(p.layers):
        _replace(cell, layer.name, _slot(_child(cell, layer.name), p.space.candidates[i], i, state, p.takes[i]))
    if not graph_mode:  # a compiled function would parse the hook into its graph
        cell.register_forward_pre_hook(_draw)
    if p.weight is not None:
        name, shape = p.weight
        weight = RandomWeight(shape, 0, state)
        cell.insert_child_to_cell("rna_random_weight", weight)
        if name == "input":  # after the draw's hook: the noise of this forward
            cell.register_forward_pre_hook(_times_random_weight(weight))
        else:
            _replace(cell, name, Weighted(_child(cell, name), weight))
    unique_parameter_names(cell)
    cell.rna = Randomized(p, p.controller(), state, graph_mode)
    cell.rna_controller = cell.rna.controller


def adopt_cell(cell: nn.Cell, num_classes: int, in_channels: int, random: bool, graph_mode: bool,
               world_size: int = 1) -> Network:
    """A ``Network`` around ``cell`` (see the module docstring)."""
    rna = getattr(cell, "rna", None)
    if isinstance(rna, Randomized):
        if rna.compiled != graph_mode:
            raise ValueError(f"the cell was randomized for {'compiled' if rna.compiled else 'eager'} runs; "
                             f"randomize it with graph_mode={graph_mode} for this backend")
        return Network([("module", cell)], rna.state, rna.controller, num_classes, in_channels, rna.bn_layout,
                       rna.sigma_names, True, graph_mode, world_size, prefix="module.")
    return Network([("module", cell)], DrawState(1, 0, 0), UnheldController(random), num_classes, in_channels,
                   BNLayout((), (), ()), (), not random, graph_mode, world_size, prefix="module.")
