"""The training loop: every epoch's batches through the recipe's method, the callbacks around each step."""

from __future__ import annotations

from ..methods import Step
from ..recipes import lr_at
from .callbacks import Callback
from .state import RunState


def fit(state: RunState, callbacks: list[Callback]) -> None:
    """Epochs ``start_epoch`` .. ``recipe.epochs`` - 1; each rank trains on its shard of every global batch."""
    recipe, n = state.recipe, state.steps_per_epoch
    for epoch in range(state.start_epoch, recipe.epochs):
        state.begin_epoch(epoch)
        for cb in callbacks:
            cb.on_epoch_begin(state)
        for i, x, y in state.batches():  # this rank's share of step i's batch, from ``skip`` on
            state.lr = lr_at(recipe, epoch, i, n)
            step = Step(state.clf, state.optimizer, recipe, state.streams["attack"], state.lr)
            state.add(state.method.step(step, x, y), i + 1)
            for cb in callbacks:
                cb.on_step(state)
        for cb in callbacks:
            cb.on_epoch_end(state)
