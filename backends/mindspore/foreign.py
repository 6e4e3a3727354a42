"""A user's own MindSpore ``nn.Cell`` (images in [0, 1] -> logits) in rna-core.

``randomize(cell, norms="bn+in", graph_mode=...)`` turns every ``nn.BatchNorm2d`` of the cell into an RNA slot
(candidates built for its channels, the BN candidate taking the layer's gamma, beta and moving statistics), in
place. The path lives in one int32 ``Parameter`` shared by the slots (``rna_path``, not trainable): in compiled
graphs (``graph_mode=True``: ``ms.jit`` or GRAPH_MODE) each slot switches on its entry, so one graph serves every
path; eagerly (PyNative) the slots read a host copy, with no device read per slot. For eager runs a forward
pre-hook draws the path of every call; a cell randomized for compiled runs has no hook (MindSpore would parse it
into the graph), so call ``next_draw(cell)`` before each call (rna-core's programs do).

``Adopted`` gives any cell the interface of a built ``Network`` (``construct(x, draw)``, ``next_draw``,
``programs``): the draw of a randomized cell, or none for a cell that is deterministic or random in its own way
(detected by ``differs_between_forwards``; only the protocols that hold no draw apply to it).
"""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

from rna_core.apart import BNLayout
from rna_core.controller import DrawController, UnheldController
from rna_core.models import graph as g
from rna_core.paths import PathSpace

from .layers import NormSlot, candidate_owners, unique_parameter_names, used_mask
from .programs import Programs


class _HostPath:
    """The path as a host array (PyNative slots read it), shared by the slots of one cell."""

    def __init__(self, num_layers: int) -> None:
        self.path = np.zeros(num_layers, np.int32)
        self.external = False  # set while rna-core runs the cell with a draw of its own


class ForeignSlot(NormSlot):
    """``NormSlot`` inside a user's cell: called as ``slot(x)``, it reads the path from the shared ``rna_path``
    Parameter (compiled) or its host copy (eager)."""

    def __init__(self, channels: int, specs, slot: int, graph_mode: bool, path: ms.Parameter, host: _HostPath):
        super().__init__(channels, specs, slot, graph_mode)
        self.rna_path = path
        self.host = host
        self.noise = Tensor(np.zeros(1, np.float32))

    def construct(self, x):
        if self.single:
            return getattr(self, self.keys[0])(x, (self.rna_path, self.noise))
        if self.graph_mode:
            return self.choices[self.rna_path[self.slot]](x, (self.rna_path, self.noise))
        return self.choices[int(self.host.path[self.slot])](x, (self.rna_path, self.noise))


def next_draw(cell: nn.Cell) -> np.ndarray:
    """Draw the path of the next forward of a randomized ``cell`` (fresh, or the one its controller holds) and write
    it where the slots read it; returns it. The pre-hook does this for eager calls."""
    path = cell.rna_controller.next_draw().path.astype(np.int32)
    cell.rna_host.path[:] = path
    if cell.rna_graph_mode:
        cell.rna_path.copy_(Tensor(path))
    return path


def _draw(cell: nn.Cell, args: tuple) -> None:
    if not cell.rna_host.external:
        next_draw(cell)


def randomize(cell: nn.Cell, norms: str = "bn+in", layer_free: bool = True, seed: int = 0,
              graph_mode: bool = False) -> nn.Cell:
    """``cell`` with every ``nn.BatchNorm2d`` turned into an RNA slot over ``norms`` (see the module docstring), in
    place; it carries ``rna_controller`` (the sampling policies) and ``rna_space``. ``graph_mode``: the cell will
    run compiled (the backend's ``mode="graph"``), else eagerly."""
    if hasattr(cell, "rna_controller"):
        raise ValueError("this cell is randomized already")
    targets = [(name, c) for name, c in cell.cells_and_names() if name and isinstance(c, nn.BatchNorm2d)]
    if not targets:
        raise ValueError(f"{type(cell).__name__} has no nn.BatchNorm2d layer to randomize")
    space = PathSpace.uniform(norms, len(targets), layer_free)
    path = ms.Parameter(Tensor(np.zeros(len(targets), np.int32)), name="rna_path", requires_grad=False)
    host = _HostPath(len(targets))
    for i, (name, bn) in enumerate(targets):
        slot = ForeignSlot(bn.num_features, space.candidates[i], i, graph_mode, path, host)
        if "bn" in slot.keys:
            target = slot.bn
            for mine, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                                 ("running_var", "moving_variance")):
                if getattr(target, mine, None) is not None and getattr(bn, theirs, None) is not None:
                    getattr(target, mine).copy_(getattr(bn, theirs).value())
        parent_name, _, child = name.rpartition(".")
        parent = cell
        for part in parent_name.split(".") if parent_name else []:
            parent = parent._cells[part]
        if isinstance(parent, nn.SequentialCell | nn.CellList):
            parent[int(child)] = slot  # its own setter: a SequentialCell also keeps a list of its cells
        else:
            setattr(parent, child, slot)
    unique_parameter_names(cell)
    cell.rna_controller = DrawController(space, np.random.default_rng(seed))
    cell.rna_space, cell.rna_host, cell.rna_graph_mode = space, host, graph_mode
    object.__setattr__(cell, "rna_path", path)  # a reference, not a second registration
    if not graph_mode:  # a compiled function would parse the hook into its graph
        cell.register_forward_pre_hook(_draw)
    return cell


class Adopted(nn.Cell):
    """Any classifier cell seen as rna-core's ``Network`` (see the module docstring); ``holdable``: its draws can be
    held (rna-core's randomness, or none)."""

    def __init__(self, cell: nn.Cell, num_classes: int, in_channels: int, random: bool, graph_mode: bool,
                 world_size: int = 1) -> None:
        super().__init__()
        self.module = cell
        self.ours = hasattr(cell, "rna_controller")
        if self.ours and cell.rna_graph_mode != graph_mode:
            raise ValueError(f"the cell was randomized for {'compiled' if cell.rna_graph_mode else 'eager'} runs; "
                             f"randomize it with graph_mode={graph_mode} for this backend")
        self.controller = cell.rna_controller if self.ours else UnheldController(random)
        self.holdable = self.ours or not random
        self.graph = g.Graph(f"adopted:{type(cell).__name__}", g.Seq(()), self.controller.space.num_layers,
                             in_channels, num_classes)
        self.bn_layout = BNLayout((), (), ())
        self.loss_scale = 1.0
        self.graph_mode = graph_mode
        self.programs = Programs(self, graph_mode, world_size)
        self.last_path = np.zeros(self.controller.space.num_layers, np.int64)
        self.param_slots = candidate_owners(self)

    def construct(self, x, draw):
        if self.graph_mode or not self.ours:
            return self.module(x)
        self.module.rna_host.external = True  # eager: the path is this forward's draw, not the hook's
        out = self.module(x)
        self.module.rna_host.external = False
        return out

    def next_draw(self):
        """The draw of the next forward, written where the cell's slots read it (a placeholder for a cell whose
        randomness rna-core does not draw); as data, so nothing is compiled in."""
        noise = Tensor(np.zeros(1, np.float32))
        if self.ours:
            self.last_path = next_draw(self.module).astype(np.int64)
        else:
            self.controller.next_draw()
        if self.graph_mode:
            return ms.mutable((Tensor(self.last_path.astype(np.int32)), noise))
        return self.last_path.astype(np.int32), noise

    def param_mask(self, path=None) -> np.ndarray:
        """``layers.used_mask`` for ``path`` (default: the last draw's)."""
        return used_mask(self.param_slots, self.last_path if path is None else path)


def differs_between_forwards(cell: nn.Cell, x: Tensor, tries: int = 3) -> bool:
    """True when forwards on the same input (eval mode) give different logits: the cell is randomized."""
    was = cell.training
    cell.set_train(False)
    first = cell(x).asnumpy()
    out = any(not np.array_equal(first, cell(x).asnumpy()) for _ in range(tries))
    cell.set_train(was)
    return out
