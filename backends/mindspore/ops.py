"""``MindSporeOps``: the core's ``rna_core.ops.Ops`` on MindSpore tensors, one MindSpore call each. A jit class: the
core's losses call it inside compiled programs too (``programs.Programs``)."""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Tensor, ops

from rna_core.ops import Ops


@ms.jit_class
class MindSporeOps(Ops):
    def tensor(self, array: np.ndarray) -> Tensor:
        array = np.ascontiguousarray(array)
        return Tensor(array.astype(np.int32) if array.dtype == np.int64 else array)

    def numpy(self, t: Tensor) -> np.ndarray:
        return t.asnumpy()

    def clip(self, t, lo, hi):
        return ops.clamp(t, lo, hi)

    def sign(self, t):
        return ops.sign(t)

    def abs(self, t):
        return ops.abs(t)

    def sqrt(self, t):
        return ops.sqrt(t)

    def exp(self, t):
        return ops.exp(t)

    def sigmoid(self, t):
        return ops.sigmoid(t)

    def atanh(self, t):
        return ops.atanh(t)

    def log_softmax(self, t):
        return ops.log_softmax(t, 1)

    def where(self, mask, a, b):
        shape = np.broadcast_shapes(*(tuple(v.shape) for v in (mask, a, b) if isinstance(v, Tensor)))
        dtype = next((v.dtype for v in (a, b) if isinstance(v, Tensor)), ms.float32)

        def full(v):
            return v.broadcast_to(shape) if isinstance(v, Tensor) else ops.full(shape, v, dtype=dtype)

        return ops.where(mask.broadcast_to(shape), full(a), full(b))

    def l2(self, t):
        return ops.sqrt((t.reshape(t.shape[0], -1) ** 2).sum(axis=1))

    def sum(self, t, axis):
        return t.sum(axis=axis)

    def mean(self, t, axis):
        return t.mean(axis=axis)

    def max(self, t, axis):
        return t.max(axis=axis)

    def argmax(self, t, axis):
        return t.argmax(axis=axis).astype(ms.int32)

    def sort(self, t, axis):
        values, indices = ops.sort(t, axis=axis)
        return values, indices.astype(ms.int32)

    def nonzero(self, mask):
        idx = ops.nonzero(mask).reshape(-1)
        return idx.astype(ms.int32) if idx.shape[0] else idx  # (CPU Cast rejects size 0)

    def gather(self, t, idx):
        return ops.gather(t, idx, 0)

    def scatter(self, t, idx, rows):
        return ops.tensor_scatter_update(t, idx.reshape(-1, 1), rows)

    def pick(self, t, idx):
        return ops.gather_elements(t, 1, idx.reshape(-1, 1)).reshape(-1)

    def one_hot(self, idx, k, like):
        return ops.one_hot(idx, k, Tensor(1.0, like.dtype), Tensor(0.0, like.dtype))

    def stack(self, ts, axis):
        return ops.stack(ts, axis)


OPS = MindSporeOps()
