"""The ImageNet input pipeline's work on one image, written once for every engine (``docs/methods.md``).

``ImageSamples`` decodes an image-folder sample and augments it as the papers' ImageNet recipes do (torchvision's
algorithms on PIL): for training, RandomResizedCrop(size, scale (0.08, 1), ratio (3/4, 4/3)) + a horizontal flip
with probability 1/2; for evaluation, the shorter side resized to size * 8 / 7 (256 for 224) and the center crop.
Every random number of sample ``i`` in epoch ``e`` comes from ``SeedSequence((seed, e, i))``: an image's crop
depends on the run's seed, the epoch and the image only, so any number of workers, any rank and a resumed run
see the same crops. ``rank_indices`` gives each rank its contiguous shard of every global batch of the epoch's
order (the order from the core's data Generator), DistributedSampler's semantics with the in-memory path's
shards. The engines that run it in parallel are the backends' (``Backend.loader``: torch's DataLoader with worker
processes, ``mindspore.dataset``); ``thread_loader`` is the core's reference engine.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .formats import DataFormatError

SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)


def crop_box(rng: np.random.Generator, width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, w, h) of RandomResizedCrop: up to 10 tries of an area fraction in ``SCALE`` and a log-uniform
    aspect ratio in ``RATIO`` that fit the image, else the center crop of the ratio clamped to ``RATIO``."""
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*SCALE)
        aspect = math.exp(rng.uniform(math.log(RATIO[0]), math.log(RATIO[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    ratio = width / height
    if ratio < RATIO[0]:
        w, h = width, round(width / RATIO[0])
    elif ratio > RATIO[1]:
        w, h = round(height * RATIO[1]), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


@dataclass
class ImageSamples:
    """Map-style samples of ``files`` with ``labels``: ``samples[i]`` is (uint8 3 x size x size, label), augmented
    for epoch ``epoch`` when ``train``."""

    files: list[Path]
    labels: np.ndarray
    size: int = 224
    train: bool = True
    seed: int = 0
    epoch: int = 0

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        from PIL import Image

        path = self.files[int(i)]
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                im.load()
        except (OSError, SyntaxError, ValueError) as e:
            raise DataFormatError(f"{path}: cannot decode the image ({e})") from None
        if self.train:
            rng = np.random.default_rng(np.random.SeedSequence((self.seed, self.epoch, int(i))))
            left, top, w, h = crop_box(rng, *im.size)
            im = im.resize((self.size, self.size), Image.BILINEAR, box=(left, top, left + w, top + h))
            if rng.random() < 0.5:
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
        else:
            w, h = im.size
            s = round(self.size * 8 / 7) / min(w, h)
            im = im.resize((max(self.size, round(w * s)), max(self.size, round(h * s))), Image.BILINEAR)
            left, top = (im.size[0] - self.size) // 2, (im.size[1] - self.size) // 2
            im = im.crop((left, top, left + self.size, top + self.size))
        return np.asarray(im, np.uint8).transpose(2, 0, 1), int(self.labels[int(i)])


def rank_indices(order: np.ndarray, batch_size: int, rank: int, world: int, start: int = 0) -> np.ndarray:
    """This rank's samples of the epoch: its contiguous ``batch_size / world`` shard of every full global batch
    of ``order`` from batch ``start`` on (the last incomplete batch dropped, as training drops it)."""
    if batch_size % world:
        raise ValueError(f"the global batch {batch_size} does not split over {world} ranks")
    per = batch_size // world
    full = len(order) // batch_size
    shards = [order[b * batch_size + rank * per:b * batch_size + (rank + 1) * per] for b in range(start, full)]
    return np.concatenate(shards) if shards else np.zeros(0, np.int64)


def loader_workers(recipe, world) -> int:
    """The recipe's ``workers``, else the cores this process may use over the ranks, between 1 and 8."""
    if recipe.workers is not None:
        return recipe.workers
    return max(1, min(8, len(os.sched_getaffinity(0)) // world.size))


def thread_loader(samples: ImageSamples, indices: np.ndarray, batch_size: int,
                  workers: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The core's engine: batches of ``batch_size`` of ``samples[indices]`` (uint8 NCHW, int64), decoded by
    ``workers`` threads (PIL releases the GIL while it decodes and resizes), in order."""
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="rna-core-decode") as pool:
        for b in range(0, len(indices) - len(indices) % batch_size, batch_size):
            items = list(pool.map(samples.__getitem__, indices[b:b + batch_size]))
            yield np.stack([x for x, _ in items]), np.asarray([y for _, y in items], np.int64)
