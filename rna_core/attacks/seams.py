"""The two seams every backend implements so that the attacks, written once, run on it.

- :class:`Ops`: the array operations the loops need beyond arithmetic, indexing and comparison operators (which
  torch and MindSpore tensors share), each one direct framework call, so every step stays on the device.
- :class:`Oracle`: what an attack sees of a model: the next draw of its randomness under the controller's current
  policy, a named per-example loss with its input gradient from one forward (one compiled call in GRAPH_MODE),
  logits, and a Jacobian for DeepFool.

A tensor ``T`` is the backend's own type; the core never inspects it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

T = Any  # a backend tensor
LOSS_NAMES = ("ce", "dlr", "dlr-t", "cw", "logits")


@dataclass(frozen=True)
class Loss:
    """A per-example attack loss ``(logits z, labels y, weights w) -> (N,)`` (float64 references in
    ``rna_core.attacks.losses``):

    - ``ce``: CE(z, y);
    - ``dlr``: -(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3) (Croce & Hein 2020, Eq. 5);
    - ``dlr-t``: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2), target t = w;
    - ``cw``: w * max(z_y - max_{j != y} z_j, -kappa), w the per-example constant c (the other maximum taken over
      (1 - onehot) z, as torchattacks does);
    - ``logits``: sum_k w_k z_k (one Jacobian row per one-hot w).

    The Oracle's gradient is that of the summed loss (each example's own gradient), or with ``mean`` of the
    batch-mean loss (torchattacks' convention for FGSM / PGD / MIFGSM).
    """

    name: str
    kappa: float = 0.0
    mean: bool = False

    def __post_init__(self) -> None:
        if self.name not in LOSS_NAMES:
            raise ValueError(f"unknown attack loss {self.name!r}; known: {LOSS_NAMES}")


CE, CE_MEAN, DLR, DLR_TARGETED, LOGITS = Loss("ce"), Loss("ce", mean=True), Loss("dlr"), Loss("dlr-t"), Loss("logits")


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
    def sigmoid(self, t: T) -> T: ...

    @abstractmethod
    def atanh(self, t: T) -> T: ...

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


class Oracle(ABC):
    """A model as the attacks see it. ``draw()`` consumes the next draw of the model's randomness under its
    controller's policy (held: the same draw every time; resample: a fresh one); the other calls run one forward
    on the draw they are given. Attacks run in the caller's train/eval mode; every example's loss depends on its
    own input only in eval mode, so the gradient of the summed loss is each example's own gradient."""

    ops: Ops
    num_classes: int

    @abstractmethod
    def draw(self) -> Any: ...

    @abstractmethod
    def loss_grad(self, loss: Loss, x: T, y: T, w: T, draw: Any) -> tuple[T, T, T]:
        """(per-example loss (N,), logits (N, K), d sum(loss) / dx, or d mean(loss) / dx if ``loss.mean``) from one
        forward on ``draw``."""

    @abstractmethod
    def logits(self, x: T, draw: Any) -> T: ...

    def jacobian(self, x: T, y: T, draw: Any) -> tuple[T, T]:
        """(logits (N, K), d logits / dx as (N, K, ...)) on one draw: one loss-gradient call per class."""
        ops, rows, logits = self.ops, [], None
        for k in range(self.num_classes):
            w = ops.one_hot(ops.tensor(np.full(x.shape[0], k, np.int64)), self.num_classes, x)
            _, logits, g = self.loss_grad(LOGITS, x, y, w, draw)
            rows.append(g)
        return logits, ops.stack(rows, 1)
