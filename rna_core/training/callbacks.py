"""What happens around the steps of a training run, one callback each (the loop, ``loop.fit``, calls them in
order): ``Divergence`` reads the running sums every ``log_every`` steps and at the epoch's end and stops a run
whose loss became non-finite; ``Progress`` shows them; ``Logging`` appends the epoch to the history;
``Checkpoints`` writes a checkpoint after every epoch and every ``checkpoint_every`` steps (rank 0; never of
non-finite weights)."""

from __future__ import annotations

import time

import numpy as np
from tqdm.auto import tqdm

from ..checkpoints import save_checkpoint
from ..recipes import lr_at
from .state import RunState, TrainingDiverged


class Callback:
    def on_epoch_begin(self, state: RunState) -> None: ...

    def on_step(self, state: RunState) -> None: ...

    def on_epoch_end(self, state: RunState) -> None: ...


class Divergence(Callback):
    def on_step(self, state: RunState) -> None:
        if state.step % state.recipe.log_every == 0 or state.last_step:
            state.read()


class Progress(Callback):
    """One bar over the whole run (only where ``enabled``: rank 0, progress asked for): every step moves it, so its
    rate gives the time left to the run's end; the epoch, loss, accuracy and lr beside it."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.bar = enabled, None

    def on_epoch_begin(self, state: RunState) -> None:
        r, n = state.recipe, state.steps_per_epoch
        if self.bar is None:
            self.bar = tqdm(total=r.epochs * n, initial=state.epoch * n + state.skip, leave=False,
                            disable=not self.enabled, unit="step", smoothing=0.1)
        self.bar.set_description(f"{r.name} [{r.norms}] epoch {state.epoch + 1}/{r.epochs}")

    def on_step(self, state: RunState) -> None:
        self.bar.update(1)
        if state.last_read == state.step:  # read just now
            loss, correct, seen = state.sums
            self.bar.set_postfix(loss=f"{loss / seen:.3f}", acc=f"{correct / seen:.3f}", lr=f"{state.lr:.3g}")

    def on_epoch_end(self, state: RunState) -> None:
        if state.epoch + 1 == state.recipe.epochs:
            self.bar.close()


class Logging(Callback):
    def on_epoch_end(self, state: RunState) -> None:
        loss, correct, seen = state.read()
        n = state.steps_per_epoch
        state.history.append({"epoch": state.epoch, "lr": lr_at(state.recipe, state.epoch, n - 1, n),
                              "train_loss": loss / seen, "train_acc": correct / seen,
                              "seconds": time.perf_counter() - state.started})


class Checkpoints(Callback):
    def on_step(self, state: RunState) -> None:
        k = state.recipe.checkpoint_every
        if k and state.step % k == 0 and not state.last_step:
            sums = state.read()
            self.save(state, {"step": state.step, "sums": sums, "data_rng": state.data_rng})

    def on_epoch_end(self, state: RunState) -> None:
        self.save(state)

    @staticmethod
    def save(state: RunState, inside: dict | None = None) -> None:
        """A checkpoint after the epoch, or inside it (``inside``: steps done, running sums, and the data stream's
        state at the epoch's start)."""
        meta, tag = state.meta(), f"ckpt-e{state.epoch:04d}"
        if inside is not None:
            meta["partial"] = inside
            tag += f"-s{inside['step']:06d}"
        if not state.world.is_main:
            return
        be, model = state.clf.backend, state.clf.model
        weights = be.get_state(model)
        bad = [k for k, v in weights.items() if not np.isfinite(v).all()]
        if bad:
            raise TrainingDiverged(f"non-finite weights in {bad[:5]} at epoch {state.epoch}; not checkpointed: "
                                   f"{state.run_dir} keeps the last finite checkpoint, if any")
        save_checkpoint(state.run_dir, tag, weights, be.get_state(model, optimizer=state.optimizer), meta)
