"""``TorchOps``: the core's ``rna_core.ops.Ops`` on torch tensors, one torch call each."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rna_core.ops import Ops


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """numpy -> ``device`` without stalling the host: on CUDA through pinned memory with a non-blocking copy
    (a pageable copy would wait for every kernel queued before it)."""
    t = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class TorchOps(Ops):
    def __init__(self, device: torch.device) -> None:
        self.device = device

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        return to_device(array, self.device)

    def numpy(self, t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().numpy()

    def clip(self, t, lo, hi):
        return torch.clamp(t, lo, hi)

    def sign(self, t):
        return torch.sign(t)

    def abs(self, t):
        return torch.abs(t)

    def sqrt(self, t):
        return torch.sqrt(t)

    def exp(self, t):
        return torch.exp(t)

    def sigmoid(self, t):
        return torch.sigmoid(t)

    def atanh(self, t):
        return torch.atanh(t)

    def log_softmax(self, t):
        return F.log_softmax(t, 1)

    def where(self, mask, a, b):
        return torch.where(mask, a, b)

    def l2(self, t):
        return t.flatten(1).norm(p=2, dim=1)

    def sum(self, t, axis):
        return t.sum(dim=axis)

    def mean(self, t, axis):
        return t.mean(dim=axis)

    def max(self, t, axis):
        return t.amax(dim=axis)

    def argmax(self, t, axis):
        return t.argmax(dim=axis)

    def sort(self, t, axis):
        values, indices = torch.sort(t, dim=axis)
        return values, indices

    def nonzero(self, mask):
        return mask.nonzero().flatten()

    def gather(self, t, idx):
        return t[idx]

    def scatter(self, t, idx, rows):
        return t.index_copy(0, idx, rows)

    def pick(self, t, idx):
        return t.gather(1, idx[:, None])[:, 0]

    def one_hot(self, idx, k, like):
        return F.one_hot(idx, k).to(like.dtype)

    def stack(self, ts, axis):
        return torch.stack(ts, axis)
