"""A user's own MindSpore ``nn.Cell`` (images in [0, 1] -> logits) in rna-core.

``randomize(cell, norms="bn+in", graph_mode=...)`` turns every ``nn.BatchNorm2d`` of the cell into an RNA slot
(candidates built for its channels, the BN candidate taking the layer's gamma, beta and moving statistics), in
place. The slots read the draw from one ``layers.DrawState`` (``rna_state``): the path Parameter in compiled graphs
(``graph_mode=True``: ``ms.jit`` or GRAPH_MODE), so one graph serves every path, its host copy eagerly. For eager
runs a forward pre-hook draws the path of every call; a cell randomized for compiled runs has no hook (MindSpore
parses hooks into the graph and fails), so call ``next_draw(cell)`` before each call (rna-core's programs write the
draw themselves). CTRW's noise and APART's BN perturbation reach the cell's layers through the same state (a
user's ``construct(x)`` passes nothing on).

``adopt_cell`` makes any cell a ``network.Network`` (its one child ``module``): the draws of a randomized cell, or
none for a cell that is deterministic or random in its own way (detected by ``differs_between_forwards``; only the
protocols that hold no draw apply to it).
"""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

from rna_core.apart import BNLayout
from rna_core.bounds import scaled_sigma_bounds
from rna_core.controller import DrawController, UnheldController
from rna_core.models.ctrw import user_weight_shape
from rna_core.paths import PathSpace

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
    path, noise = cell.rna_controller.next_draw()
    cell.rna_state.write(path, noise, None)
    return path.astype(np.int32)


def _draw(cell: nn.Cell, args: tuple) -> None:
    """Forward pre-hook of an eager randomized cell: the draw of this call, unless rna-core wrote it already."""
    if not cell.rna_state.pending:
        next_draw(cell)


def _times_random_weight(weight: RandomWeight):
    """Forward pre-hook multiplying an eager cell's input by CTRW's random weight."""

    def hook(cell: nn.Cell, args: tuple) -> tuple:
        if tuple(args[0].shape[1:]) != weight.shape:
            raise ValueError(f"CTRW's random weight has shape {weight.shape} but the cell gets inputs of shape "
                             f"{tuple(args[0].shape[1:])} (per example): randomize with that input_shape")
        return (weight(args[0]), *args[1:])

    return hook


def _replace(cell: nn.Cell, name: str, new: nn.Cell) -> None:
    """Put ``new`` in place of the child ``name`` (a dotted path) of ``cell``."""
    parent_name, _, child = name.rpartition(".")
    parent = _child(cell, parent_name) if parent_name else cell
    if isinstance(parent, nn.SequentialCell | nn.CellList):
        parent[int(child)] = new  # its own setter: a SequentialCell also keeps a list of its cells
    else:
        setattr(parent, child, new)


def _bn_key(specs) -> str | None:
    """The key of the BN candidate among ``specs`` (``bn`` or ``bn/na``), if any."""
    return next((spec.key for spec in specs if spec.kind == "bn"), None)


def _bn_layout(targets: list[tuple[str, nn.Cell]], space: PathSpace) -> BNLayout:
    """APART's layout of the BN candidates of the slots that replace ``targets`` (cell order, ``rna_core.apart``;
    the torch twin's module order)."""
    names, channels, offsets, offset = [], [], [], 0
    for i, (name, bn) in enumerate(targets):
        key = _bn_key(space.candidates[i])
        if key is not None:
            names.append(f"{name}.{key}")
            channels.append(bn.num_features)
            offsets.append(offset)
            offset += 2 * bn.num_features
    return BNLayout(tuple(names), tuple(channels), tuple(offsets))


def _slot(bn: nn.BatchNorm2d, specs, i: int, state: DrawState) -> NormSlot:
    """The slot replacing ``bn``; its BN candidate takes the layer's affine and statistics."""
    slot = NormSlot(bn.num_features, specs, i, state)
    key = _bn_key(specs)
    if key is not None:
        target = getattr(slot, key)
        for mine, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                             ("running_var", "moving_variance")):
            if getattr(target, mine, None) is not None and getattr(bn, theirs, None) is not None:
                getattr(target, mine).copy_(getattr(bn, theirs).value())
    return slot


def randomize(cell: nn.Cell, norms: str | None = "bn+in", layer_free: bool = True, seed: int = 0,
              graph_mode: bool = False, random_weight: str | None = None,
              input_shape: tuple[int, int, int] | None = None) -> nn.Cell:
    """``cell`` with every ``nn.BatchNorm2d`` turned into an RNA slot over ``norms`` (see the module docstring;
    ``norms=None`` leaves them), in place; it carries ``rna_controller`` (the sampling policies), ``rna_space`` and
    ``rna_bn_layout`` (its BN candidates take APART's perturbation: ``randomize(c, "bn")`` gives a BN model APART
    trains). ``graph_mode``: the cell will run compiled (the backend's ``mode="graph"``), else eagerly.

    ``random_weight``: CTRW's random weight x * (mu + sigma eps) (Eq. 4) before a named ``nn.Dense`` (shape
    (in_channels,)) or ``nn.Conv2d`` (shape ``input_shape``: its input's (C, H, W); the first convolution weights
    the image), or on the cell's input (``"input"``, eager cells only: a compiled cell cannot run the hook, name its
    first convolution instead); registered as ``rna_random_weight``, its eps drawn with the path;
    ``rna_sigma_bounds`` as on torch (``rna_core.bounds.scaled_sigma_bounds``)."""
    if hasattr(cell, "rna_controller"):
        raise ValueError("this cell is randomized already")
    targets = [(name, c) for name, c in cell.cells_and_names() if name and isinstance(c, nn.BatchNorm2d)] \
        if norms else []
    if norms and not targets:
        raise ValueError(f"{type(cell).__name__} has no nn.BatchNorm2d layer to randomize")
    if not norms and random_weight is None:
        raise ValueError("nothing to randomize: give norms, random_weight or both")
    space = PathSpace.uniform(norms, len(targets), layer_free) if targets else PathSpace.uniform("bn", 1)
    shape = _weight_shape(cell, random_weight, input_shape, graph_mode)
    noise_size = 0 if shape is None else int(np.prod(shape))
    layout = _bn_layout(targets, space)
    state = DrawState(space.num_layers, noise_size, layout.size)
    state.compiled = graph_mode
    for i, (name, bn) in enumerate(targets):
        _replace(cell, name, _slot(bn, space.candidates[i], i, state))
    if not graph_mode:  # a compiled function would parse the hook into its graph
        cell.register_forward_pre_hook(_draw)
    if shape is not None:
        weight = RandomWeight(shape, 0, state)
        cell.insert_child_to_cell("rna_random_weight", weight)
        if random_weight == "input":  # after the draw's hook: the noise of this forward
            cell.register_forward_pre_hook(_times_random_weight(weight))
        else:
            _replace(cell, random_weight, Weighted(_child(cell, random_weight), weight))
        cell.rna_sigma_bounds = scaled_sigma_bounds(noise_size)
    unique_parameter_names(cell)
    cell.rna_controller = DrawController(space, np.random.default_rng(seed), noise_size)
    cell.rna_space, cell.rna_state, cell.rna_graph_mode = space, state, graph_mode
    cell.rna_bn_layout = layout
    return cell


def _child(cell: nn.Cell, name: str) -> nn.Cell | None:
    """The sub-cell at dotted path ``name``, or None."""
    for part in name.split("."):
        cell = cell._cells.get(part) if cell is not None else None
    return cell


def _weight_shape(cell: nn.Cell, where: str | None, input_shape, graph_mode: bool) -> tuple[int, ...] | None:
    """The shape of the random weight ``randomize`` places at ``where`` (None: no weight)."""
    if where is None:
        return None
    target = None
    if where == "input":
        if graph_mode:
            raise ValueError("random_weight='input' runs as a forward hook, which a compiled cell cannot run: name "
                             "the cell's first convolution instead (random_weight='conv1', input_shape=(C, H, W)), "
                             "which weights the same image")
    else:
        target = _child(cell, where)
        if target is None:
            raise ValueError(f"random_weight={where!r}: the cell has no sub-cell of that name")
    kind = ("linear" if isinstance(target, nn.Dense) else "conv" if isinstance(target, nn.Conv2d)
            else type(target).__name__)
    return user_weight_shape(where, kind, getattr(target, "in_channels", None), input_shape)


def adopt_cell(cell: nn.Cell, num_classes: int, in_channels: int, probe: np.ndarray | None, graph_mode: bool,
               world_size: int = 1) -> Network:
    """A ``Network`` around ``cell`` (see the module docstring)."""
    own = getattr(cell, "rna_controller", None)
    if own is not None:
        if cell.rna_graph_mode != graph_mode:
            raise ValueError(f"the cell was randomized for {'compiled' if cell.rna_graph_mode else 'eager'} runs; "
                             f"randomize it with graph_mode={graph_mode} for this backend")
        controller, state, layout, random = own, cell.rna_state, cell.rna_bn_layout, own.is_random
        sigmas = ("rna_random_weight.sigma",) if hasattr(cell, "rna_sigma_bounds") else ()
    else:
        random = probe is not None and differs_between_forwards(cell, Tensor(np.asarray(probe, np.float32)))
        controller, state, layout, sigmas = UnheldController(random), DrawState(1, 0, 0), BNLayout((), (), ()), ()
    return Network([("module", cell)], state, controller, num_classes, in_channels, layout, sigmas,
                   own is not None or not random, graph_mode, world_size, prefix="module.")


def differs_between_forwards(cell: nn.Cell, x: Tensor, tries: int = 3) -> bool:
    """True when forwards on the same input (eval mode) give different logits: the cell is randomized."""
    was = cell.training
    cell.set_train(False)
    first = cell(x).asnumpy()
    out = any(not np.array_equal(first, cell(x).asnumpy()) for _ in range(tries))
    cell.set_train(was)
    return out
