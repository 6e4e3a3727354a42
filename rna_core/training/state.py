"""The state of a training run the loop and its callbacks share: the classifier and its optimizer, the recipe and
the method, the four random streams, the history, and where the run stands inside the current epoch."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoints import rng_state
from ..classifier import Classifier
from ..data.datasets import ImageFolderDataset
from ..data.loader import batches, prefetch
from ..data.pipeline import ImageSamples, loader_workers, rank_indices
from ..distributed import World
from ..methods import Method, StepResult
from ..recipes import Recipe

STREAMS = ("data", "path", "attack")  # data order and augmentation, paths, attack numbers (evaluation: its seed)


# a mean training loss above EXPLOSION * ln K (K classes) is a diverged run (``RunState.read``)
EXPLOSION = 100.0


class TrainingDiverged(FloatingPointError):
    """The loss or the weights became non-finite, or the loss exploded; the run directory keeps the last finite
    checkpoint."""


@dataclass
class RunState:
    """``epoch``, ``step`` (steps done in the epoch), ``lr`` (the last step's) and ``sums`` (loss * count, correct,
    count since the epoch began: device tensors until ``read``); ``skip``: the steps a mid-epoch checkpoint had done;
    ``data_rng``: the data stream's state where the epoch began (a mid-epoch checkpoint replays the epoch)."""

    recipe: Recipe
    run_dir: Path
    clf: Classifier
    optimizer: Any
    method: Method
    streams: dict[str, np.random.Generator]
    world: World
    train_data: Any
    steps_per_epoch: int
    history: list[dict] = field(default_factory=list)
    start_epoch: int = 0
    partial: dict | None = None
    epoch: int = 0
    step: int = 0
    skip: int = 0
    lr: float = 0.0
    sums: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    last_read: int = 0
    read_sums: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    data_rng: dict | None = None
    started: float = 0.0

    def begin_epoch(self, epoch: int) -> None:
        """The epoch's start: its data order from the data stream here, or a mid-epoch checkpoint's place in it."""
        self.epoch, self.started = epoch, time.perf_counter()
        self.data_rng = rng_state(self.streams["data"])
        self.skip = self.partial["step"] if self.partial else 0
        self.sums = list(self.partial["sums"]) if self.partial else [0.0, 0.0, 0.0]
        self.step = self.last_read = self.skip
        self.read_sums = [float(v) for v in self.sums]
        self.partial = None

    def batches(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(step index, this rank's share of the batch) for the epoch's steps from ``skip`` on, prepared ahead by a
        background thread. In-memory data: the global batch drawn and augmented here, then sharded (the steps
        before ``skip`` drawn again, same order and augmentation, and passed over). An image folder: the input
        pipeline (``data.pipeline``) on the backend's engine, each rank decoding only its shard."""
        r = self.recipe
        if isinstance(self.train_data, ImageFolderDataset):
            return prefetch(self._pipeline())
        every = batches(self.train_data, r.batch_size, self.streams["data"], shuffle=True, padding=r.crop_padding,
                        flip=r.flip, drop_last=True)
        return prefetch((i, *self.world.shard(x, y)) for i, (x, y) in enumerate(every) if i >= self.skip)

    def _pipeline(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        r, data, world = self.recipe, self.train_data, self.world
        order = self.streams["data"].permutation(len(data))  # the draw the in-memory path makes
        samples = ImageSamples(data.files, data.y, data.size, train=True, seed=r.seed, epoch=self.epoch)
        idx = rank_indices(order, r.batch_size, world.rank, world.size, start=self.skip)
        loader = self.clf.backend.loader(samples, idx, r.batch_size // world.size, loader_workers(r, world))
        for i, (x, y) in enumerate(loader, start=self.skip):
            yield i, x.astype(np.float32) / 255.0, y

    def add(self, result: StepResult, step: int) -> None:
        self.sums = [self.sums[0] + result.loss * result.count, self.sums[1] + result.correct,
                     self.sums[2] + result.count]
        self.step = step

    @property
    def last_step(self) -> bool:
        return self.step == self.steps_per_epoch

    def read(self) -> list[float]:
        """The running sums as numbers (one host read); raises ``TrainingDiverged`` if the loss became non-finite
        or exploded: a mean loss since the last read above ``EXPLOSION`` * ln K (K classes; ln K is the loss of a
        uniform guess, so this is a model far worse than chance that stays finite, e.g. after a too large lr)."""
        sums = [float(v) for v in self.sums]
        seen = sums[2] - self.read_sums[2]
        mean = (sums[0] - self.read_sums[0]) / seen if seen else 0.0
        limit = EXPLOSION * math.log(max(self.clf.model.num_classes, 2))
        if not math.isfinite(sums[0]) or mean > limit:
            what = f"became {sums[0]}" if not math.isfinite(sums[0]) else \
                f"exploded to a mean of {mean:.4g} (over {EXPLOSION} * ln K = {limit:.4g})"
            raise TrainingDiverged(f"the training loss {what} at epoch {self.epoch}, between steps "
                                   f"{self.last_read} and {self.step - 1} (lr {self.lr:.3g}); {self.run_dir} keeps "
                                   "the last finite checkpoint, if any: lower lr and resume from it or start again")
        self.sums, self.read_sums, self.last_read = sums, sums, self.step
        return sums

    def meta(self) -> dict:
        """The sidecar of a checkpoint now (``partial`` added by a mid-epoch one)."""
        clf = self.clf
        return {"recipe": self.recipe.to_dict(), "arch": clf.arch, "path_space": clf.space.to_dict(),
                "backend": clf.backend.name, "epoch": self.epoch, "history": self.history,
                "rng": {name: rng_state(g) for name, g in self.streams.items()}}
