"""Turn a ``rna_core.models`` graph into torch modules whose names are the canonical parameter names."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
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
        self.precision = "fp32"
        self.channels_last = False
        self.compiled = False
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

    def prepare(self, precision: str = "fp32", channels_last: bool = False, compile: bool = False,
                compiler: str = "inductor", mode: str = "default") -> None:
        """How the forward runs (weights and checkpoints stay float32 and NCHW-named):

        - ``precision``: ``fp32``, or ``bf16`` / ``fp16`` autocast (logits are returned in float32, so losses
          and input gradients are taken in float32);
        - ``channels_last``: convolution weights and the input stored NHWC (``layers`` gives GN/IN/BGN back in it);
        - ``compile``: ``torch.compile`` (``compiler`` backend) of the network's body; the RNA slots switch to
          their one-hot form (``NormSlot``), so one graph serves every path (the path is drawn in ``forward``,
          outside the compiled body, and enters it as a tensor). Graphs are specialised on the batch shape,
          train / eval mode and whether the input needs a gradient (an attack) or not (a training step).
          ``mode`` is torch.compile's (``reduce-overhead`` adds CUDA graphs: one launch per forward or backward,
          for small models whose steps are bound by kernel launches; the logits are then copied out of the
          graph's memory, which the next replay reuses)."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
        self.precision, self.channels_last = precision, channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)
        if compile and not self.compiled:
            for module in self.modules():
                if isinstance(module, NormSlot):
                    module.mix = True
            options = {"backend": compiler, "dynamic": False}
            if compiler == "inductor":
                options["mode"] = mode
            self.__dict__["_compiled_body"] = torch.compile(self._body, **options)
            self.compiled = True
            self.__dict__["_copy_out"] = mode == "reduce-overhead"

    @property
    def slots(self) -> list[NormSlot]:
        """The RNA slots (those in the path space), in path order."""
        if "_slots" not in self.__dict__:
            self.__dict__["_slots"] = sorted((m for m in self.modules() if isinstance(m, NormSlot)
                                              and m.slot is not None), key=lambda m: m.slot)
        return self.__dict__["_slots"]

    def drop_unselected_grads(self) -> None:
        """After a compiled backward: the candidates off the current path hold exact zero gradients; set them to
        None, as an eager backward leaves them, so that weight decay and momentum skip them."""
        if self.compiled:
            for slot in self.slots:
                for layer in slot.unselected():
                    for p in layer.parameters():
                        p.grad = None

    def _select(self, path: np.ndarray, device: torch.device) -> torch.Tensor:
        width = max(len(s.keys) for s in self.slots) if self.slots else 1
        onehot = np.zeros((len(path), width), np.float32)
        onehot[np.arange(len(path)), path] = 1.0
        return to_device(onehot, device)

    def forward(self, x: torch.Tensor, draw: Draw | None = None) -> torch.Tensor:
        path, noise = draw if draw is not None else self.controller.next_draw()
        self._state.path[:] = path
        if self.compiled:
            self._state.select = self._select(self._state.path, x.device)
        if noise is not None:
            self._state.noise = to_device(noise, x.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        body = self.__dict__["_compiled_body"] if self.compiled else self._body
        if self.precision == "fp32":
            out = body(x)
        else:
            with torch.autocast(x.device.type, PRECISIONS[self.precision]):
                out = body(x).float()
        return out.clone() if self.__dict__.get("_copy_out") else out

    def _body(self, x: torch.Tensor) -> torch.Tensor:
        for module in self._modules.values():
            x = module(x)
        return x


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """numpy -> ``device`` without stalling the host: on CUDA through pinned memory with a non-blocking copy
    (a pageable copy would wait for every kernel queued before it)."""
    t = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)
