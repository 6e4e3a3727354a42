"""The attacks' seams on PyTorch: ``TorchOps`` (one torch call each) and ``TorchOracle`` (autograd on a Network).

The loss formulas are those of ``rna_core.attacks.seams.Loss`` (float64 references in ``rna_core.attacks.losses``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from rna_core.attacks import Loss, Ops, Oracle
from rna_core.controller import Draw

from .network import Network, to_device


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

    def sigmoid(self, t):
        return torch.sigmoid(t)

    def atanh(self, t):
        return torch.atanh(t)

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


def _dlr(z: torch.Tensor, y: torch.Tensor, w: torch.Tensor, kappa: float) -> torch.Tensor:
    s = z.sort(dim=1)[0]
    top_is_y = (z.argmax(1) == y).to(z.dtype)
    zy = z.gather(1, y[:, None])[:, 0]
    return -(zy - s[:, -2] * top_is_y - s[:, -1] * (1 - top_is_y)) / (s[:, -1] - s[:, -3] + 1e-12)


def _dlr_targeted(z: torch.Tensor, y: torch.Tensor, w: torch.Tensor, kappa: float) -> torch.Tensor:
    s = z.sort(dim=1)[0]
    zy, zt = z.gather(1, y[:, None])[:, 0], z.gather(1, w[:, None])[:, 0]
    return -(zy - zt) / (s[:, -1] - 0.5 * (s[:, -3] + s[:, -4]) + 1e-12)


def _cw(z: torch.Tensor, y: torch.Tensor, w: torch.Tensor, kappa: float) -> torch.Tensor:
    onehot = F.one_hot(y, z.shape[1]).to(z.dtype)
    other = ((1 - onehot) * z).amax(1)
    real = (onehot * z).amax(1)
    return w * torch.clamp(real - other, min=-kappa)


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]] = {
    "ce": lambda z, y, w, kappa: F.cross_entropy(z, y, reduction="none"),
    "dlr": _dlr,
    "dlr-t": _dlr_targeted,
    "cw": _cw,
    "logits": lambda z, y, w, kappa: (z * w).sum(1),
}


FP16_SCALE = 2.0**10


class TorchOracle(Oracle):
    """Autograd on a Network; the Jacobian takes one forward and K backwards. Under fp16 autocast the input
    gradient is taken of the loss times ``FP16_SCALE`` and divided by it after (small per-example gradients
    of a batch-mean loss would otherwise flush to zero in float16 and leave sign(g) = 0); bf16 has float32's
    range and needs no scale."""

    def __init__(self, model: Network, ops: TorchOps) -> None:
        self.model, self.ops, self.num_classes = model, ops, model.graph.num_classes

    def draw(self) -> Draw:
        return self.model.controller.next_draw()

    def loss_grad(self, loss: Loss, x, y, w, draw: Draw):
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = self.model(x, draw)
            per = LOSSES[loss.name](logits, y, w, loss.kappa)
            scale = FP16_SCALE if self.model.precision == "fp16" else 1.0
            (grad,) = torch.autograd.grad((per.mean() if loss.mean else per.sum()) * scale, x)
        return per.detach(), logits.detach(), grad / scale if scale != 1.0 else grad

    @torch.no_grad()
    def logits(self, x, draw: Draw):
        return self.model(x, draw)

    def jacobian(self, x, y, draw: Draw):
        x = x.detach().requires_grad_(True)
        k = self.num_classes
        with torch.enable_grad():
            logits = self.model(x, draw)
            scale = FP16_SCALE if self.model.precision == "fp16" else 1.0
            rows = [torch.autograd.grad(logits[:, j].sum() * scale, x, retain_graph=j + 1 < k)[0] for j in range(k)]
        return logits.detach(), torch.stack(rows, 1) / scale if scale != 1.0 else torch.stack(rows, 1)
