"""torch models: a ``rna_core.models`` graph built as modules whose names are the canonical parameter names, or a
user's own module, inside one ``Network`` (the core's ``rna_core.model.Model``).

The draw of a forward reaches the slots, random weights and BN layers through the model's ``layers.DrawState``,
which ``forward`` writes before running the body.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from rna_core.apart import BNLayout, bn_layout
from rna_core.controller import Draw, DrawController
from rna_core.models import graph as g
from rna_core.models.ctrw import random_weights
from rna_core.norms import PLAIN_BN

from .layers import BatchNorm, DrawState, NormSlot, RandomConv, RandomWeight, StridedPointwise
from .ops import to_device

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


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


SIMPLE = {g.ReLU: lambda n: nn.ReLU(), g.MaxPool: lambda n: nn.MaxPool2d(n.kernel, n.stride, n.padding),
          g.GlobalAvgPool: lambda n: GlobalAvgPool(), g.Linear: lambda n: nn.Linear(n.cin, n.cout),
          g.Normalize: lambda n: Normalize(n.mean, n.std)}


class Builder:
    """Graph nodes -> modules; the slots and random weights read ``state``."""

    def __init__(self, space, state: DrawState) -> None:
        self.space, self.state = space, state

    def __call__(self, node: object) -> nn.Module:
        if isinstance(node, g.Seq):
            return nn.Sequential(OrderedDict((n, self(c)) for n, c in node.children))
        if isinstance(node, g.Residual):
            return Residual(node, self)
        if isinstance(node, g.Conv) and node.random is not None:
            return RandomConv(node.cin, node.cout, node.kernel, node.stride, node.padding, node.bias,
                              node.random.offset, self.state)
        if isinstance(node, g.Conv) and node.kernel == 1 and node.stride > 1 and node.padding == 0:
            return StridedPointwise(node.cin, node.cout, 1, node.stride, 0, bias=node.bias)
        if isinstance(node, g.Conv):
            return nn.Conv2d(node.cin, node.cout, node.kernel, node.stride, node.padding, bias=node.bias)
        if isinstance(node, g.RandomWeight):
            return RandomWeight(node.shape, node.offset, self.state)
        if isinstance(node, g.Norm):
            specs = PLAIN_BN if node.slot is None else self.space.candidates[node.slot]
            return NormSlot(node.channels, specs, node.slot, self.state)
        if type(node) in SIMPLE:
            return SIMPLE[type(node)](node)
        raise TypeError(f"the torch backend cannot build graph node {type(node).__name__}")


class Network(nn.Module):
    """A model: ``forward(x)`` first asks the controller for its draw (the sampling policy), ``forward(x, draw)``
    runs on a given draw (the core's primitives pass the one they drew; ``delta``: the tensor of the draw's BN
    perturbation to differentiate). Built from a graph (``build``), its children are the graph's root, named
    canonically; around a user's module (``around``, ``own_model``), the one child ``module``, whose prefix
    canonical names drop."""

    def __init__(self, children: list[tuple[str, nn.Module]], state: DrawState, controller: DrawController,
                 num_classes: int, in_channels: int, layout: BNLayout, sigma_names: tuple[str, ...],
                 holdable: bool, prefix: str = "") -> None:
        super().__init__()
        for name, child in children:
            self.add_module(name, child)
        self.state, self.controller = state, controller
        self.num_classes, self.in_channels = num_classes, in_channels
        self.bn_layout, self.sigma_names, self.holdable, self.prefix = layout, sigma_names, holdable, prefix
        self.replicas: dict[str, nn.Module] = {}  # wrappers of this model (DDP, GradScaler), not registered
        self.precision = "fp32"
        self.channels_last = False
        self.compiled: nn.Module | None = None  # torch.compile'd body
        self.copy_out = False
        offsets = layout.offset_of()
        for name, module in self.named_modules():
            if isinstance(module, BatchNorm) and name.removeprefix(prefix) in offsets:
                module.attach(state, offsets[name.removeprefix(prefix)])
        self.slots = sorted((m for m in self.modules() if isinstance(m, NormSlot) and m.slot is not None),
                            key=lambda m: m.slot)

    @classmethod
    def build(cls, graph: g.Graph, controller: DrawController) -> Network:
        controller.check_slots(graph.num_slots, graph.name)
        layout = bn_layout(graph, controller.space)
        state = DrawState(graph.num_slots, graph.noise_size, layout.size)
        build = Builder(controller.space, state)
        sigmas = tuple(f"{name}.sigma" for name in random_weights(graph))
        return cls([(n, build(c)) for n, c in graph.root.children], state, controller, graph.num_classes,
                   graph.in_channels, layout, sigmas, True)

    def set_train(self, mode: bool = True) -> Network:
        """``train(mode)``; for a built model skipped when it is in that mode already (the core sets it before every
        pass; a user's module, whose layers its owner may switch, is always set)."""
        if not self.prefix and self.training == mode and all(m.training == mode for m in self.slots):
            return self
        return self.train(mode)

    def named_state(self) -> dict[str, torch.Tensor]:
        """Parameters and buffers by canonical name (tensors sharing the model's storage)."""
        return {k.removeprefix(self.prefix): v for k, v in self.state_dict().items()}

    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def forward(self, x: torch.Tensor, draw: Draw | None = None, delta: torch.Tensor | None = None) -> torch.Tensor:
        draw = draw if draw is not None else self.controller.next_draw()
        bn = None
        if draw.bn is not None:
            draw.bn.check_batch(len(x))
            if delta is None:
                delta = to_device(self.bn_layout.check(draw.bn.delta), x.device)
            bn = (delta, draw.bn.groups, draw.bn.track)
        self.state.write(draw.path, draw.noise, bn, x.device)
        self.state.pending = True
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        body = self.compiled if self.compiled is not None else self.body
        try:
            if self.precision == "fp32":
                out = body(x)
            else:
                with torch.autocast(x.device.type, PRECISIONS[self.precision]):
                    out = body(x).float()
        finally:
            self.state.pending, self.state.bn = False, None
        return out.clone() if self.copy_out else out

    def body(self, x: torch.Tensor) -> torch.Tensor:
        for module in self._modules.values():
            x = module(x)
        return x

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
        if compile and self.compiled is None:
            for slot in self.slots:
                slot.mix = True
            self.state.width = max((len(s.keys) for s in self.slots), default=1)
            options = {"backend": compiler, "dynamic": False}
            if compiler == "inductor":
                options["mode"] = mode
            self.compiled = torch.compile(self.body, **options)
            self.copy_out = mode == "reduce-overhead"

    def synchronize_batch_norm(self, world_size: int) -> None:
        """SyncBN: the BN layers use the statistics of the data-parallel world's global batch in training."""
        for module in self.modules():
            if isinstance(module, BatchNorm):
                module.synchronize(world_size)

    def drop_unselected_grads(self) -> None:
        """After a compiled backward: the candidates off the current path hold exact zero gradients; set them to
        None, as an eager backward leaves them, so that weight decay and momentum skip them."""
        if self.compiled is not None:
            for slot in self.slots:
                for layer in slot.unselected():
                    for p in layer.parameters():
                        p.grad = None
