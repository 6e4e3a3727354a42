"""A backend-neutral description of an architecture, built once and instantiated by any backend.

Nodes are frozen dataclasses; each backend's ``build`` turns them into its own modules, and the
names of ``Seq`` children become the canonical parameter names (torch style, dot separated), so one
safetensors file serves every backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RandomWeight:
    """CTRW's random weight (Eq. 4): x * (mu + sigma * eps), elementwise over ``shape`` and broadcast over the
    batch; mu and sigma are trainable (initialised to 1), eps = noise[offset : offset + prod(shape)] of the
    model's current draw (one N(0, 1) vector per forward from the core's controller)."""

    shape: tuple[int, ...]
    offset: int = 0

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))


@dataclass(frozen=True)
class Conv:
    """A convolution; with ``random`` (CTRW's "filter" variant) its weight is multiplied by that random weight."""

    cin: int
    cout: int
    kernel: int
    stride: int = 1
    padding: int = 0
    bias: bool = False
    random: RandomWeight | None = None


@dataclass(frozen=True)
class Norm:
    """A normalization slot. ``slot`` indexes the PathSpace layer; ``None`` is a plain BN outside it."""

    channels: int
    slot: int | None


@dataclass(frozen=True)
class ReLU:
    pass


@dataclass(frozen=True)
class MaxPool:
    kernel: int
    stride: int
    padding: int = 0


@dataclass(frozen=True)
class GlobalAvgPool:
    """Mean over the spatial axes, then flatten to (N, C)."""


@dataclass(frozen=True)
class Linear:
    cin: int
    cout: int


@dataclass(frozen=True)
class Normalize:
    """(x - mean) / std per channel; keeps attacks in [0, 1] pixel space."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class Seq:
    children: tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class Residual:
    """y = main(pre(x)) + s, s = x if ``shortcut`` is None else shortcut(pre(x) if shortcut_from_pre else x);
    then ReLU if ``post_relu``. Covers post-activation (ResNet) and pre-activation (PreAct, WRN) blocks."""

    main: Seq
    pre: Seq | None = None
    shortcut: Seq | None = None
    shortcut_from_pre: bool = False
    post_relu: bool = True


@dataclass(frozen=True)
class Graph:
    name: str
    root: Seq
    num_slots: int
    in_channels: int
    num_classes: int
    config: dict = field(default_factory=dict, compare=False)
    noise_size: int = 0


class SlotCounter:
    """Hands out consecutive PathSpace layer indices in the order layers appear."""

    def __init__(self) -> None:
        self.count = 0

    def norm(self, channels: int, randomized: bool = True) -> Norm:
        if not randomized:
            return Norm(channels, None)
        self.count += 1
        return Norm(channels, self.count - 1)


def normalize(in_channels: int, mean: tuple[float, ...], std: tuple[float, ...]) -> Normalize:
    """The input normalization node; mean and std have one value or one per input channel."""
    for label, v in (("mean", mean), ("std", std)):
        if len(v) not in (1, in_channels):
            raise ValueError(f"input {label} has {len(v)} values for {in_channels} input channels")
    if any(s <= 0 for s in std):
        raise ValueError(f"input std must be > 0, got {std}")
    return Normalize(tuple(mean), tuple(std))


def seq(*children: tuple[str, object]) -> Seq:
    return Seq(tuple(children))


def walk(node: object, prefix: str = ""):
    """Yield (dotted name, node) for every node, depth first, in definition order."""
    yield prefix, node
    if isinstance(node, Seq):
        for name, child in node.children:
            yield from walk(child, f"{prefix}.{name}" if prefix else name)
    elif isinstance(node, Residual):
        for name in ("pre", "main", "shortcut"):
            child = getattr(node, name)
            if child is not None:
                yield from walk(child, f"{prefix}.{name}" if prefix else name)
