"""Turn a ``rna_core.models`` graph into torch modules whose names are the canonical parameter names."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from rna_core.apart import bn_layout
from rna_core.controller import Draw, DrawController
from rna_core.models import graph as g
from rna_core.norms import parse_norms

from .layers import BatchNorm, NormSlot, PathState, RandomConv, RandomWeight

_PLAIN_BN = parse_norms("bn")


class Normalize(nn.Module):
    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class GlobalAvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class Residual(nn.Module):
    def __init__(self, node: g.Residual, build) -> None:
        super().__init__()
        self.pre = build(node.pre) if node.pre is not None else None
        self.main = build(node.main)
        self.shortcut = build(node.shortcut) if node.shortcut is not None else None
        self.from_pre = node.shortcut_from_pre
        self.post_relu = node.post_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pre(x) if self.pre is not None else x
        s = x if self.shortcut is None else self.shortcut(h if self.from_pre else x)
        y = self.main(h) + s
        return torch.relu(y) if self.post_relu else y


class Network(nn.Module):
    """A built graph. ``forward(x)`` first asks the controller for its draw (the sampling policy);
    ``forward(x, draw)`` runs on a given draw (the attacks' Oracle takes the draw itself, for EOT)."""

    def __init__(self, graph: g.Graph, controller: DrawController) -> None:
        super().__init__()
        controller.check_slots(graph.num_slots, graph.name)
        self.graph = graph
        self.controller = controller
        self.replicas: dict[str, nn.Module] = {}  # wrappers of this model (DDP), kept with it, not registered
        self._state = PathState(graph.num_slots)
        for name, child in graph.root.children:
            self.add_module(name, self._build(child))
        self.bn_layout = bn_layout(graph, controller.space)
        offsets = self.bn_layout.offset_of()
        for name, module in self.named_modules():
            if isinstance(module, BatchNorm):
                module.attach(self._state, offsets[name])

    def _build(self, node: object) -> nn.Module:
        if isinstance(node, g.Seq):
            return nn.Sequential(OrderedDict((n, self._build(c)) for n, c in node.children))
        if isinstance(node, g.Residual):
            return Residual(node, self._build)
        if isinstance(node, g.Conv) and node.random is not None:
            return RandomConv(node.cin, node.cout, node.kernel, node.stride, node.padding, node.bias,
                              node.random.offset, self._state)
        if isinstance(node, g.Conv):
            return nn.Conv2d(node.cin, node.cout, node.kernel, node.stride, node.padding, bias=node.bias)
        if isinstance(node, g.RandomWeight):
            return RandomWeight(node.shape, node.offset, self._state)
        if isinstance(node, g.Norm):
            specs = _PLAIN_BN if node.slot is None else self.controller.space.candidates[node.slot]
            return NormSlot(node.channels, specs, node.slot, self._state)
        if isinstance(node, g.ReLU):
            return nn.ReLU()
        if isinstance(node, g.MaxPool):
            return nn.MaxPool2d(node.kernel, node.stride, node.padding)
        if isinstance(node, g.GlobalAvgPool):
            return GlobalAvgPool()
        if isinstance(node, g.Linear):
            return nn.Linear(node.cin, node.cout)
        if isinstance(node, g.Normalize):
            return Normalize(node.mean, node.std)
        raise TypeError(f"the torch backend cannot build graph node {type(node).__name__}")

    @contextmanager
    def perturbed(self, delta: torch.Tensor, groups: int, track: bool) -> Iterator[None]:
        """Inside the block every BN layer computes APART's Eq. 3 with its slice of ``delta`` (see BatchNorm)."""
        self._state.bn = (delta, groups, track)
        try:
            yield
        finally:
            self._state.bn = None

    def synchronize_batch_norm(self, on: bool = True) -> None:
        """SyncBN: BN layers in training mode use the statistics of the data-parallel world's global batch."""
        self._state.sync = on

    def forward(self, x: torch.Tensor, draw: Draw | None = None) -> torch.Tensor:
        path, noise = draw if draw is not None else self.controller.next_draw()
        self._state.path[:] = path
        if noise is not None:
            self._state.noise = torch.from_numpy(noise)
        for module in self._modules.values():
            x = module(x)
        return x
