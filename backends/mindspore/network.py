"""Turn a ``rna_core.models`` graph into MindSpore cells whose parameter names are the canonical names.

Containers take ``(x, draw)``; the draw (path: int32 (L,), a tensor in GRAPH_MODE and a host array in PyNative;
noise: float32 tensor) flows to every NormSlot and random weight as data, so one GRAPH_MODE compilation serves
every path and noise.
"""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from rna_core.apart import bn_layout
from rna_core.controller import DrawController
from rna_core.models import graph as g
from rna_core.norms import parse_norms

from .layers import (
    BatchGroupNorm,
    NormSlot,
    RandomConv,
    RandomWeight,
    candidate_owners,
    unique_parameter_names,
    used_mask,
)
from .programs import Programs

_PLAIN_BN = parse_norms("bn")


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
        self.flags = [getattr(c, "takes_draw", False) for _, c in children]
        for name, cell in children:
            self.insert_child_to_cell(name, cell)
        self.takes_draw = True
        self.amp = False  # mixed precision (set on the network only): the output cast back to float32

    def construct(self, x, draw):
        for i in range(len(self.names)):
            if self.flags[i]:
                x = getattr(self, self.names[i])(x, draw)
            else:
                x = getattr(self, self.names[i])(x)
        if self.amp:
            x = x.astype(ms.float32)
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
        self.takes_draw = True

    def construct(self, x, draw):
        h = self.pre(x, draw) if self.has_pre else x
        if self.has_short:
            s = self.shortcut(h, draw) if self.from_pre else self.shortcut(x, draw)
        else:
            s = x
        y = self.main(h, draw) + s
        return ops.relu(y) if self.post_relu else y


def half_precision(model: nn.Cell, dtype) -> None:
    """The cell part of ``Network.mixed_precision``: convolutions and dense layers of ``model`` compute in ``dtype``,
    its RNA slots normalize in float32. Before the model's first compiled program."""
    if model.programs.built:
        raise RuntimeError("set the precision before the first compiled program")
    for _, cell in model.cells_and_names():
        if isinstance(cell, nn.Conv2d | nn.Dense):
            cell.to_float(dtype)
        elif isinstance(cell, NormSlot):
            cell.float_in = True


def synchronize_bn(model: nn.Cell, world_size: int) -> None:
    """SyncBN for the BN layers of ``model``'s APART layout (those told an offset). Before the first compiled
    program."""
    if model.programs.built:
        raise RuntimeError("enable SyncBN before the first compiled step")
    for _, cell in model.cells_and_names():
        if isinstance(cell, BatchGroupNorm) and cell.offset >= 0:
            cell.synchronize(world_size)


class Network(Seq):
    """A built graph: ``construct(x, draw)``, draw = (path int32 (L,), noise float32) from ``next_draw()``
    (the controller's draw for the forward that starts). ``programs`` holds its compiled functions."""

    def __init__(self, graph: g.Graph, controller: DrawController, graph_mode: bool = False,
                 world_size: int = 1) -> None:
        controller.check_slots(graph.num_slots, graph.name)
        self.space, self.graph_mode = controller.space, graph_mode
        super().__init__([(n, self._build(c)) for n, c in graph.root.children])
        self.graph = graph
        self.controller = controller
        unique_parameter_names(self)
        self.bn_layout = bn_layout(graph, controller.space)
        offsets = self.bn_layout.offset_of()
        for name, cell in self.cells_and_names():
            if isinstance(cell, BatchGroupNorm) and name in offsets:
                cell.offset = offsets[name]
        self.programs = Programs(self, graph_mode, world_size)
        self.param_slots = candidate_owners(self)
        self.last_path = np.zeros(graph.num_slots, np.int64)
        self.loss_scale = 1.0

    def mixed_precision(self, dtype, loss_scale: float) -> None:
        """MindSpore's O2 level by hand: convolutions and dense layers compute in ``dtype`` (``to_float``), the
        normalization slots, the output and the loss in float32; the training loss is scaled by ``loss_scale``
        (a static scale, as MindSpore's FixedLossScaleManager) and the gradients unscaled. Before the first
        compiled program."""
        half_precision(self, dtype)
        self.amp, self.loss_scale = True, loss_scale

    def param_mask(self, path: np.ndarray | None = None) -> np.ndarray:
        """``layers.used_mask`` for ``path`` (default: the last draw's)."""
        return used_mask(self.param_slots, self.last_path if path is None else path)

    def next_draw(self) -> tuple[Tensor | np.ndarray, Tensor]:
        """(path, noise) of the next forward (a model without random weights gets a 1-element noise). GRAPH_MODE:
        both tensors, in an ``ms.mutable`` tuple so the graph treats them as data, not constants to compile in.
        PyNative: the path stays a numpy array, so each slot reads its entry without a device synchronisation."""
        path, noise = self.controller.next_draw()
        self.last_path = path
        noise_t = Tensor(noise if noise is not None else np.zeros(1, np.float32))
        if not self.graph_mode:
            return path.astype(np.int32), noise_t
        return ms.mutable((Tensor(path.astype(np.int32)), noise_t))

    def synchronize_batch_norm(self, world_size: int) -> None:
        """SyncBN: BN layers in training mode use the statistics of the data-parallel world's global batch; must
        come before the first compiled program."""
        synchronize_bn(self, world_size)

    def _build(self, node: object) -> nn.Cell:
        if isinstance(node, g.Seq):
            return Seq([(n, self._build(c)) for n, c in node.children])
        if isinstance(node, g.Residual):
            return Residual(node, self._build)
        if isinstance(node, g.Conv) and node.random is not None:
            return RandomConv(node.cin, node.cout, node.kernel, node.stride, node.padding, node.bias,
                              node.random.offset)
        if isinstance(node, g.RandomWeight):
            return RandomWeight(node.shape, node.offset)
        if isinstance(node, g.Conv):
            return nn.Conv2d(node.cin, node.cout, node.kernel, node.stride, pad_mode="pad", padding=node.padding,
                             has_bias=node.bias)
        if isinstance(node, g.Norm):
            specs = _PLAIN_BN if node.slot is None else self.space.candidates[node.slot]
            return NormSlot(node.channels, specs, node.slot, self.graph_mode)
        if isinstance(node, g.ReLU):
            return nn.ReLU()
        if isinstance(node, g.MaxPool):
            return MaxPool(node.kernel, node.stride, node.padding)
        if isinstance(node, g.GlobalAvgPool):
            return GlobalAvgPool()
        if isinstance(node, g.Linear):
            return nn.Dense(node.cin, node.cout)
        if isinstance(node, g.Normalize):
            return Normalize(node.mean, node.std)
        raise TypeError(f"the mindspore backend cannot build graph node {type(node).__name__}")
