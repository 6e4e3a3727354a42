"""Inputs as users hold them, converted at one point (``as_examples``) for evaluation and attacks.

Accepted: an rna-core data set (anything with ``batch(idx)`` and ``len``); an ``(x, y)`` pair of numpy arrays
(uint8, or float in [0, 1]), torch tensors (any device) or MindSpore Tensors, images N x C x H x W; a map-style data
set (``ds[i]`` -> (image C x H x W, label), e.g. torch's ``TensorDataset``); or any iterable of (x, y) batches (a torch
``DataLoader``, a generator). Images leave as float32 in [0, 1] (uint8 / 255), labels as int64. A re-iterable
source (a ``DataLoader``) is streamed batch by batch at its own batch size; a one-shot iterator is read once into
memory. ``like`` gives adversarial examples back in the caller's framework, device and dtype.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

ACCEPTED = ("an rna-core data set, an (images, labels) pair of numpy arrays / torch tensors / MindSpore Tensors "
            "(images N x C x H x W, uint8 or float in [0, 1]), a map-style data set (ds[i] -> (image, label)) or an "
            "iterable of (images, labels) batches such as a torch DataLoader")


def framework(a: Any) -> str | None:
    """``torch`` or ``mindspore`` for a tensor of that framework (read from its class, importing nothing)."""
    for cls in type(a).__mro__:
        root = cls.__module__.split(".")[0]
        if root in ("torch", "mindspore"):
            return root
    return None


def host(a: Any, what: str = "images") -> np.ndarray:
    """``a`` (numpy, a torch tensor on any device, a MindSpore Tensor, a list of numbers) as a numpy array."""
    if isinstance(a, np.ndarray):
        return a
    fw = framework(a)
    if fw == "torch":  # read through the tensor's own methods: the core imports no framework
        a = a.detach().cpu()
        return (a.float() if str(a.dtype) in ("torch.float16", "torch.bfloat16") else a).numpy()
    if fw == "mindspore":
        return a.asnumpy()
    if isinstance(a, list | tuple | int | float | np.generic):
        return np.asarray(a)
    raise TypeError(f"{what}: expected a numpy array, torch tensor or MindSpore Tensor, got {type(a).__name__}")


def unit_images(x: np.ndarray) -> np.ndarray:
    """float32 images in [0, 1]: uint8 divided by 255, float cast (their range is checked by the model)."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    if np.issubdtype(x.dtype, np.floating):
        return x.astype(np.float32, copy=False)
    raise TypeError(f"images must be uint8 or float in [0, 1], got dtype {x.dtype}")


@dataclass
class Examples:
    """In-memory images ``x`` (uint8 or float in [0, 1], N x C x H x W) and labels ``y``."""

    x: np.ndarray
    y: np.ndarray
    num_classes: int | None = None

    def __post_init__(self) -> None:
        if self.x.ndim != 4:
            raise ValueError(f"images must be N x C x H x W, got shape {self.x.shape}")
        if self.y.shape != (len(self.x),):
            raise ValueError(f"{len(self.x)} images but labels of shape {self.y.shape}")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])

    def batch(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.x[idx], self.y[idx]


@dataclass
class MapStyle:
    """A map-style data set (``ds[i]`` -> (image C x H x W, label)) batched by stacking its items."""

    items: Any

    def __len__(self) -> int:
        return len(self.items)

    def batch(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pairs = [_pair(self.items[int(i)], f"item {int(i)}") for i in idx]
        return np.stack([x for x, _ in pairs]), np.asarray([y for _, y in pairs]).reshape(-1)


@dataclass
class Stream:
    """A re-iterable source of (x, y) batches (a torch ``DataLoader``), read at its own batch size."""

    loader: Iterable

    def __len__(self) -> int:
        return len(self.loader.dataset) if hasattr(self.loader, "dataset") else 0

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i, item in enumerate(self.loader):
            yield _pair(item, f"batch {i}")


def _pair(item: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(item, list | tuple) or len(item) < 2:
        raise TypeError(f"{where}: expected an (images, labels) pair, got {type(item).__name__}; accepted: {ACCEPTED}")
    return host(item[0], f"{where} images"), host(item[1], f"{where} labels")


def as_examples(data: Any) -> Any:
    """``data`` in one of the accepted forms (``ACCEPTED``) as a source ``iterate`` reads; else a TypeError
    naming them."""
    if hasattr(data, "batch") and hasattr(data, "__len__"):
        return data
    if isinstance(data, tuple | list) and len(data) == 2 and not isinstance(data[0], tuple | list):
        x, y = host(data[0]), host(data[1], "labels")
        return Examples(x, y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, str | bytes | dict):
        if not len(data):
            raise ValueError("no examples: the data is empty")
        if host(_pair(data[0], "item 0")[0]).ndim != 4:  # items (image, label); else a list of batches
            return MapStyle(data)
    if isinstance(data, Iterable) and not isinstance(data, str | bytes | dict):
        if iter(data) is data:  # a one-shot iterator: read once
            pairs = [_pair(item, f"batch {i}") for i, item in enumerate(data)]
            if not pairs:
                raise ValueError("the iterable of batches is empty")
            return Examples(np.concatenate([x for x, _ in pairs]), np.concatenate([y for _, y in pairs]))
        return Stream(data)
    raise TypeError(f"cannot read examples from a {type(data).__name__}; accepted: {ACCEPTED}")


def iterate(source: Any, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(x float32 in [0, 1], y int64) batches of ``source`` (``as_examples``'s): ``batch_size`` at a time, or a
    stream's own batches."""
    if isinstance(source, Stream):
        for x, y in source:
            yield unit_images(x), y.astype(np.int64, copy=False)
        return
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for i in range(0, len(source), batch_size):
        x, y = source.batch(np.arange(i, min(i + batch_size, len(source))))
        yield unit_images(np.asarray(x)), np.asarray(y).astype(np.int64, copy=False)


def count_batches(source: Any, batch_size: int) -> int | None:
    """How many batches ``iterate`` yields (None: a stream of unknown length)."""
    if isinstance(source, Stream):
        return len(source.loader) if hasattr(source.loader, "__len__") else None
    return -(-len(source) // batch_size)


def first_images(source: Any, n: int) -> np.ndarray:
    """Up to ``n`` of the first images of ``source`` (float32 in [0, 1]): a probe of the model's output."""
    x, _ = next(iterate(source, n), (None, None))
    if x is None:
        raise ValueError("no examples to evaluate: the data is empty")
    return x[:n]


def like(adv: np.ndarray, template: Any) -> Any:
    """``adv`` in ``template``'s framework, device and float dtype (numpy stays numpy, float32)."""
    fw = framework(template)  # made by the template's own methods and class: the core imports no framework
    if fw == "torch":
        return (template if template.is_floating_point() else template.float()).new_tensor(adv)
    if fw == "mindspore":
        return type(template)(adv)
    return adv
