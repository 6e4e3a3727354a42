"""MindSpore models: a ``rna_core.models`` graph built as cells whose parameter names are the canonical names, or a
user's own cell, inside one ``Network`` (the core's ``rna_core.model.Model``).

Every layer takes ``construct(x)``; the draw of a forward reaches the slots and random weights through the
network's ``layers.DrawState``, which ``load`` writes before each call (``programs.Programs`` does it), so one
GRAPH_MODE compilation serves every path, noise and perturbation.
"""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from rna_core.apart import BNLayout, bn_layout
from rna_core.controller import Draw, DrawController
from rna_core.models import graph as g
from rna_core.models.ctrw import random_weights
from rna_core.norms import PLAIN_BN

from .layers import (
    BatchNorm,
    DrawState,
    NormSlot,
    RandomConv,
    RandomWeight,
    candidate_owners,
    unique_parameter_names,
    used_mask,
)
from .programs import Programs


class Normalize(nn.Cell):
    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.mean = Tensor(np.asarray(mean, np.float32).reshape(1, -1, 1, 1))
        self.std = Tensor(np.asarray(std, np.float32).reshape(1, -1, 1, 1))

    def construct(self, x):
        return (x - self.mean) / self.std


class GlobalAvgPool(nn.Cell):
    def construct(self, x):
        return x.mean(axis=(2, 3))


class MaxPool(nn.Cell):
    """Max-pool with torch's padding semantics (pad with -inf, then pool without padding)."""

    def __init__(self, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.padding = padding
        self.pool = nn.MaxPool2d(kernel, stride, pad_mode="valid")

    def construct(self, x):
        if self.padding:
            p = self.padding
            x = ops.pad(x, (p, p, p, p), value=float("-inf"))
        return self.pool(x)


class Seq(nn.Cell):
    def __init__(self, children: list[tuple[str, nn.Cell]]) -> None:
        super().__init__()
        self.names = [n for n, _ in children]
        for name, cell in children:
            self.insert_child_to_cell(name, cell)

    def construct(self, x):
        for i in range(len(self.names)):
            x = getattr(self, self.names[i])(x)
        return x


class Residual(nn.Cell):
    def __init__(self, node: g.Residual, build) -> None:
        super().__init__()
        self.has_pre = node.pre is not None
        self.has_short = node.shortcut is not None
        if self.has_pre:
            self.pre = build(node.pre)
        self.main = build(node.main)
        if self.has_short:
            self.shortcut = build(node.shortcut)
        self.from_pre = node.shortcut_from_pre
        self.post_relu = node.post_relu

    def construct(self, x):
        h = self.pre(x) if self.has_pre else x
        if self.has_short:
            s = self.shortcut(h) if self.from_pre else self.shortcut(x)
        else:
            s = x
        y = self.main(h) + s
        return ops.relu(y) if self.post_relu else y


SIMPLE = {g.ReLU: lambda n: nn.ReLU(), g.MaxPool: lambda n: MaxPool(n.kernel, n.stride, n.padding),
          g.GlobalAvgPool: lambda n: GlobalAvgPool(), g.Linear: lambda n: nn.Dense(n.cin, n.cout),
          g.Normalize: lambda n: Normalize(n.mean, n.std)}


class Builder:
    """Graph nodes -> cells; the slots and random weights read ``state``."""

    def __init__(self, space, state: DrawState) -> None:
        self.space, self.state = space, state

    def __call__(self, node: object) -> nn.Cell:
        if isinstance(node, g.Seq):
            return Seq([(n, self(c)) for n, c in node.children])
        if isinstance(node, g.Residual):
            return Residual(node, self)
        if isinstance(node, g.Conv) and node.random is not None:
            return RandomConv(node.cin, node.cout, node.kernel, node.stride, node.padding, node.bias,
                              node.random.offset, self.state)
        if isinstance(node, g.RandomWeight):
            return RandomWeight(node.shape, node.offset, self.state)
        if isinstance(node, g.Conv):
            return nn.Conv2d(node.cin, node.cout, node.kernel, node.stride, pad_mode="pad", padding=node.padding,
                             has_bias=node.bias)
        if isinstance(node, g.Norm):
            specs = PLAIN_BN if node.slot is None else self.space.candidates[node.slot]
            return NormSlot(node.channels, specs, node.slot, self.state)
        if type(node) in SIMPLE:
            return SIMPLE[type(node)](node)
        raise TypeError(f"the mindspore backend cannot build graph node {type(node).__name__}")


class Network(nn.Cell):
    """A model: ``construct(x)`` runs its children in order on the draw ``load`` wrote into ``state``.

    Built from a graph (``build``), its children are the graph's root, named canonically; around a user's cell
    (``around``), the one child ``module``, whose prefix canonical names drop. ``programs`` holds its compiled
    functions, ``owners`` the (slot, candidate) of every trainable parameter (``layers.candidate_owners``)."""

    def __init__(self, children: list[tuple[str, nn.Cell]], state: DrawState, controller: DrawController,
                 num_classes: int, in_channels: int, layout: BNLayout, sigma_names: tuple[str, ...],
                 holdable: bool, graph_mode: bool, world_size: int = 1, prefix: str = "") -> None:
        super().__init__()
        self.names = [n for n, _ in children]
        for name, cell in children:
            self.insert_child_to_cell(name, cell)
        self.state, self.controller = state, controller
        self.num_classes, self.in_channels = num_classes, in_channels
        self.bn_layout, self.sigma_names, self.holdable = layout, sigma_names, holdable
        self.graph_mode, self.prefix = graph_mode, prefix
        self.amp = False  # mixed precision: the output cast back to float32
        self.loss_scale = 1.0
        state.compiled = graph_mode
        offsets = layout.offset_of()
        for name, cell in self.cells_and_names():
            if isinstance(cell, BatchNorm) and name.removeprefix(prefix) in offsets:
                cell.attach(state, offsets[name.removeprefix(prefix)])
        self.owners = candidate_owners(self)
        self.switches = sum(isinstance(c, NormSlot) and not c.single for _, c in self.cells_and_names())
        self.programs = Programs(self, graph_mode, world_size)

    @classmethod
    def build(cls, graph: g.Graph, controller: DrawController, graph_mode: bool = False,
              world_size: int = 1) -> Network:
        controller.check_slots(graph.num_slots, graph.name)
        layout = bn_layout(graph, controller.space)
        state = DrawState(graph.num_slots, graph.noise_size, layout.size)
        build = Builder(controller.space, state)
        sigmas = tuple(f"{name}.sigma" for name in random_weights(graph))
        children = [(n, build(c)) for n, c in graph.root.children]
        net = cls(children, state, controller, graph.num_classes, graph.in_channels, layout, sigmas, True,
                  graph_mode, world_size)
        unique_parameter_names(net)
        return net

    def construct(self, x):
        for i in range(len(self.names)):
            x = getattr(self, self.names[i])(x)
        if self.amp:
            x = x.astype(ms.float32)
        return x

    def load(self, draw: Draw) -> None:
        """Write ``draw`` (path, noise, BN perturbation) where the layers read it, for the next call."""
        delta = None
        if draw.bn is not None:
            delta = self.bn_layout.check(draw.bn.delta)
        self.state.write(draw.path, draw.noise, delta)

    def param_mask(self, path: np.ndarray) -> np.ndarray:
        """``layers.used_mask`` of the trainable parameters for a forward on ``path``."""
        return used_mask(self.owners, path)

    def named(self) -> dict[str, ms.Parameter]:
        """The model's parameters and buffers by canonical name."""
        return {k.removeprefix(self.prefix): p for k, p in self.parameters_and_names()}

    def mixed_precision(self, dtype, loss_scale: float) -> None:
        """MindSpore's O2 level by hand: convolutions and dense layers compute in ``dtype`` (``to_float``), the
        normalization slots, the output and the loss in float32; the training loss is scaled by ``loss_scale``
        (a static scale, as MindSpore's FixedLossScaleManager) and the gradients unscaled. Before the first
        compiled program."""
        if self.programs.built:
            raise RuntimeError("set the precision before the first compiled program")
        for _, cell in self.cells_and_names():
            if isinstance(cell, nn.Conv2d | nn.Dense):
                cell.to_float(dtype)
            elif isinstance(cell, NormSlot):
                cell.float_in = True
        self.amp, self.loss_scale = True, loss_scale

    def synchronize_batch_norm(self, world_size: int) -> None:
        """SyncBN: the BN layers of the APART layout (every BN candidate) use the statistics of the data-parallel
        world's global batch in training; before the first compiled program."""
        if self.programs.built:
            raise RuntimeError("enable SyncBN before the first compiled step")
        if not self.bn_layout.names:
            raise ValueError("sync_bn: only rna-core's BN layers synchronize and this model has none: randomize the "
                             "cell first (randomize(cell, 'bn') keeps it a BN model)")
        for _, cell in self.cells_and_names():
            if isinstance(cell, BatchNorm) and cell.offset >= 0:
                cell.synchronize(world_size)
