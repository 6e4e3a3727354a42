"""``Ops``: the array operations the core's losses, training methods and attack loops use on a backend's tensors.

Arithmetic, indexing and comparison operators are the tensors' own (torch and MindSpore tensors share them); every
method here is one direct framework call, so every step stays on the device. A tensor ``T`` is the backend's own
type; the core never inspects it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

T = Any  # a backend tensor


class Ops(ABC):
    """Array operations on a backend's tensors. Labels and indices are the framework's integer type; masks are
    boolean tensors; ``axis`` may be an int or a tuple."""

    @abstractmethod
    def tensor(self, array: np.ndarray) -> T:
        """numpy -> tensor on the device (int64 labels become the framework's label type)."""

    @abstractmethod
    def numpy(self, t: T) -> np.ndarray: ...

    @abstractmethod
    def clip(self, t: T, lo: float | T | None, hi: float | T | None) -> T: ...

    @abstractmethod
    def sign(self, t: T) -> T: ...

    @abstractmethod
    def abs(self, t: T) -> T: ...

    @abstractmethod
    def sqrt(self, t: T) -> T: ...

    @abstractmethod
    def exp(self, t: T) -> T: ...

    @abstractmethod
    def sigmoid(self, t: T) -> T: ...

    @abstractmethod
    def atanh(self, t: T) -> T: ...

    @abstractmethod
    def log_softmax(self, t: T) -> T:
        """log softmax over axis 1 of an (N, K) tensor."""

    @abstractmethod
    def where(self, mask: T, a: T | float, b: T | float) -> T:
        """a where ``mask`` holds, else b; the three broadcast (a per-example (N, 1, 1, 1) mask selects rows),
        and a or b may be a Python float."""

    @abstractmethod
    def l2(self, t: T) -> T:
        """Per-example L2 norm over all axes but the first: (N,)."""

    @abstractmethod
    def sum(self, t: T, axis: int | tuple[int, ...]) -> T: ...

    @abstractmethod
    def mean(self, t: T, axis: int | tuple[int, ...]) -> T: ...

    @abstractmethod
    def max(self, t: T, axis: int) -> T: ...

    @abstractmethod
    def argmax(self, t: T, axis: int) -> T: ...

    @abstractmethod
    def sort(self, t: T, axis: int) -> tuple[T, T]:
        """(ascending values, their indices) along ``axis``."""

    @abstractmethod
    def nonzero(self, mask: T) -> T:
        """Indices (1-D) where the 1-D ``mask`` holds."""

    @abstractmethod
    def gather(self, t: T, idx: T) -> T:
        """Rows t[idx]."""

    @abstractmethod
    def scatter(self, t: T, idx: T, rows: T) -> T:
        """A copy of t with t[idx] = rows."""

    @abstractmethod
    def pick(self, t: T, idx: T) -> T:
        """t[n, idx[n]] of a 2-D t."""

    @abstractmethod
    def one_hot(self, idx: T, k: int, like: T) -> T:
        """(N, k) one-hot of ``idx`` in ``like``'s float type."""

    @abstractmethod
    def stack(self, ts: list[T], axis: int) -> T: ...


class NumpyOps(Ops):
    """``Ops`` on numpy arrays: the reference the frameworks' one-call operations follow (and a backend for numpy
    toy models)."""

    def tensor(self, array: np.ndarray) -> np.ndarray:
        return np.asarray(array)

    def numpy(self, t: np.ndarray) -> np.ndarray:
        return np.asarray(t)

    def clip(self, t, lo, hi):
        return np.clip(t, lo, hi)

    def sign(self, t):
        return np.sign(t)

    def abs(self, t):
        return np.abs(t)

    def sqrt(self, t):
        return np.sqrt(t)

    def exp(self, t):
        return np.exp(t)

    def sigmoid(self, t):
        return 1 / (1 + np.exp(-t))

    def atanh(self, t):
        return np.arctanh(t)

    def log_softmax(self, t):
        shifted = t - t.max(1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))

    def where(self, mask, a, b):
        return np.where(mask, a, b)

    def l2(self, t):
        return np.sqrt((t.reshape(len(t), -1) ** 2).sum(1))

    def sum(self, t, axis):
        return t.sum(axis=axis)

    def mean(self, t, axis):
        return t.mean(axis=axis)

    def max(self, t, axis):
        return t.max(axis=axis)

    def argmax(self, t, axis):
        return t.argmax(axis=axis)

    def sort(self, t, axis):
        idx = np.argsort(t, axis=axis, kind="stable")
        return np.take_along_axis(t, idx, axis), idx

    def nonzero(self, mask):
        return np.flatnonzero(mask)

    def gather(self, t, idx):
        return t[idx]

    def scatter(self, t, idx, rows):
        out = np.array(t)
        out[idx] = rows
        return out

    def pick(self, t, idx):
        return t[np.arange(len(idx)), idx]

    def one_hot(self, idx, k, like):
        return np.eye(k, dtype=np.asarray(like).dtype)[idx]

    def stack(self, ts, axis):
        return np.stack(ts, axis)
