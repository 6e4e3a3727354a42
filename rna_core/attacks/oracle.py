"""``Oracle``: a model as the attacks see it, built on the Backend's primitives (written once, for every backend).

``draw()`` consumes the next draw of the model's randomness under its controller's policy (held: the same draw
every time; resample: a fresh one); the other calls run one forward on the draw they are given. Attacks run in
the caller's train/eval mode; every example's loss depends on its own input only in eval mode, so the gradient
of the summed loss is each example's own gradient.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..controller import Draw
from ..losses import Loss
from ..ops import T

if TYPE_CHECKING:
    from ..backend import Backend

INPUT = ("input",)


class Oracle:
    """``backend``'s ``model`` for the attack loops: losses and their input gradients, logits, Jacobians."""

    def __init__(self, backend: Backend, model: Any) -> None:
        self.backend, self.model, self.ops = backend, model, backend.ops
        self.num_classes = model.num_classes

    def draw(self) -> Draw:
        return self.model.controller.next_draw()

    def loss_grad(self, loss: Loss, x: T, y: T, w: T, draw: Draw) -> tuple[T, T, T]:
        """(per-example loss (N,), logits (N, K), d sum(loss) / dx, or d mean(loss) / dx if ``loss.mean``) from one
        forward on ``draw``."""
        g = self.backend.value_and_grad(self.model, loss, x, y, w, draw, INPUT)
        return g.per, g.logits, g.input

    def logits(self, x: T, draw: Draw) -> T:
        return self.backend.logits(self.model, x, draw)

    def jacobian(self, x: T, y: T, draw: Draw) -> tuple[T, T]:
        """(logits (N, K), d logits / dx as (N, K, ...)) on one draw."""
        return self.backend.jacobian(self.model, x, draw)
