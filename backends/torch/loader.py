"""Image-folder batches through torch's DataLoader (``Backend.loader``): ``workers`` processes decode and augment
``rna_core.data.pipeline.ImageSamples`` (every random number from the sample's own seed, so the batches equal the
core's engine's), the batches come back in order as numpy; a worker's error reaches the user as its own line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from rna_core.data.formats import DataFormatError


def _stack(items: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([x for x, _ in items]), np.asarray([y for _, y in items], np.int64)


def worker_batches(samples: Any, indices: np.ndarray, batch_size: int,
                   workers: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    loader = DataLoader(samples, batch_size=batch_size, sampler=[int(i) for i in indices], num_workers=workers,
                        collate_fn=_stack, drop_last=True, prefetch_factor=4 if workers else None)
    batches = iter(loader)
    while True:
        try:
            x, y = next(batches)
        except StopIteration:
            return
        except DataFormatError as e:  # a worker's: "Caught ... in DataLoader worker ... Traceback ... Error: text"
            raise DataFormatError(worker_message(str(e))) from None
        yield x, y


def worker_message(text: str) -> str:
    """The original error's message out of a worker's report (its last line, without the exception's name)."""
    last = [line for line in text.strip().splitlines() if line.strip()][-1]
    return last.split("DataFormatError: ", 1)[-1]
