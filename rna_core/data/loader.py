"""Mini-batches as float32 arrays in [0, 1], with the papers' augmentation drawn from a numpy Generator."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

import numpy as np

Item = TypeVar("Item")


def random_crop_flip(x: np.ndarray, rng: np.random.Generator, padding: int, flip: bool) -> np.ndarray:
    """RandomCrop(size, padding) with zero padding, then a horizontal flip with probability 1/2 (uint8 NCHW)."""
    n, _, h, w = x.shape
    out = x
    if padding > 0:
        padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        dy = rng.integers(0, 2 * padding + 1, n)
        dx = rng.integers(0, 2 * padding + 1, n)
        rows = dy[:, None] + np.arange(h)[None]
        cols = dx[:, None] + np.arange(w)[None]
        out = padded[np.arange(n)[:, None, None, None], np.arange(x.shape[1])[None, :, None, None],
                     rows[:, None, :, None], cols[:, None, None, :]]
    if flip:
        mask = rng.random(n) < 0.5
        out = out.copy() if out is x else out
        out[mask] = out[mask][..., ::-1]
    return out


def batches(dataset, batch_size: int, rng: np.random.Generator | None = None, shuffle: bool = False,
            padding: int = 0, flip: bool = False, drop_last: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (x float32 in [0, 1], y int64). Shuffling and augmentation draw from ``rng``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if (shuffle or padding or flip) and rng is None:
        raise ValueError("shuffling or augmentation needs a numpy Generator")
    order = rng.permutation(len(dataset)) if shuffle else np.arange(len(dataset))
    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    for i in range(0, stop, batch_size):
        x, y = dataset.batch(order[i:i + batch_size])
        if padding or flip:
            x = random_crop_flip(x, rng, padding, flip)
        yield x.astype(np.float32) / 255.0, y


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


def prefetch(items: Iterable[Item], depth: int = 2) -> Iterator[Item]:
    """Yield ``items`` in order while a background thread prepares up to ``depth`` ahead (the next batch is
    read and augmented in numpy while the accelerator runs the current step). An exception in the thread is
    raised here, at the item where it happened; leaving the loop early stops the thread."""
    if depth < 1:
        raise ValueError(f"prefetch depth must be >= 1, got {depth}")
    slots: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    done = object()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fill() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as e:  # handed to the consumer
            put((done, e))

    worker = threading.Thread(target=fill, daemon=True, name="rna-core-prefetch")
    worker.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)
