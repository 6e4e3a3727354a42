"""SGD for the MindSpore backend with torch.optim.SGD's semantics, including for RNA candidates off the path.

torch.optim.SGD (dampening 0, no Nesterov): g = grad + wd * w, buf = momentum * buf + g (buf starts as the first
g), w -= lr * buf; a parameter whose gradient is None is skipped: no weight decay, no momentum, buffer kept.
An RNA candidate the step's path did not select gets no gradient in torch (None), so it stays untouched.
MindSpore's autodiff returns a zero gradient for it instead, and its fused SGD would still apply weight decay and
momentum, so the same run would drift apart on the two backends. ``MaskedSGD`` takes a 0/1 mask per parameter
(``Network.param_mask``: 1 if the draw used it) and updates only the masked-in parameters and their buffers.

The papers say nothing about unselected candidates; we keep torch's (>= 2.0) reading, where ``zero_grad`` sets
gradients to None. The authors' code (torch 1.7, ``zero_grad`` set gradients to zero) let weight decay and
momentum move every candidate at every step.
"""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops


class MaskedSGD(nn.Cell):
    """``construct(grads, mask)``: one SGD step on the parameters with mask 1 (see the module docstring).
    ``stat[i]`` is 1 until parameter i's first step (torch holds no momentum buffer for it yet)."""

    def __init__(self, params: list[Parameter], lr: float, momentum: float, weight_decay: float) -> None:
        super().__init__(auto_prefix=False)
        self.params = ParameterTuple(params)
        self.accum = self.params.clone(prefix="accum", init="zeros")
        self.stat = Parameter(Tensor(np.ones(len(params), np.float32)), name="stat")
        self.learning_rate = Parameter(Tensor(lr, ms.float32), name="learning_rate")
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)
        self.lr = float(lr)
        self.zeros: dict[int, Tensor] = {}

    def construct(self, grads, mask):
        lr = self.learning_rate
        for i in range(len(self.params)):
            p, buf, m = self.params[i], self.accum[i], mask[i]
            new_buf = self.momentum * buf + (grads[i] + self.weight_decay * p)
            ops.assign(buf, ops.where(m > 0, new_buf, buf))
            ops.assign(p, p - (m * lr) * new_buf)
        ops.assign(self.stat, self.stat * (1 - mask))
        return True

    def set_lr(self, lr: float) -> None:
        """The learning rate of the next steps (written to the device only when it changes)."""
        if lr != self.lr:
            self.learning_rate.copy_(Tensor(lr, ms.float32))
            self.lr = float(lr)

    def zero(self, i: int) -> Tensor:
        """A zero gradient for parameter i (a candidate off the step's path; kept, made once)."""
        if i not in self.zeros:
            self.zeros[i] = ops.zeros(self.params[i].shape, self.params[i].dtype)
        return self.zeros[i]

    def started(self) -> np.ndarray:
        """Per parameter: has it taken a step (does torch hold a momentum buffer for it)?"""
        return self.stat.asnumpy() == 0
