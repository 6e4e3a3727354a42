"""Image-folder batches through ``mindspore.dataset`` (``Backend.loader``): a GeneratorDataset over
``rna_core.data.pipeline.ImageSamples`` read in the given order by ``workers`` parallel workers (processes where
there are several), batched; every random number comes from the sample's own seed, so the batches equal the
core's engine's and torch's. A worker's error reaches the user as its own line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mindspore.dataset as ds
import numpy as np

from rna_core.data.formats import DataFormatError


class _Source:
    """The samples as a random-access source of (image, label) arrays."""

    def __init__(self, samples: Any) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.samples[int(i)]
        return x, np.asarray(y, np.int64)


def worker_batches(samples: Any, indices: np.ndarray, batch_size: int,
                   workers: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    data = ds.GeneratorDataset(_Source(samples), column_names=["image", "label"], sampler=[int(i) for i in indices],
                               num_parallel_workers=max(1, workers), python_multiprocessing=workers > 1)
    batches = data.batch(batch_size, drop_remainder=True).create_tuple_iterator(output_numpy=True, num_epochs=1)
    while True:
        try:
            x, y = next(batches)
        except StopIteration:
            return
        except RuntimeError as e:  # the pipeline's report of a worker's exception
            if "DataFormatError" not in str(e):
                raise
            raise DataFormatError(worker_message(str(e))) from None
        yield x, y


def worker_message(text: str) -> str:
    """The original error's message out of the pipeline's report: its line naming the exception."""
    lines = [line.strip() for line in text.splitlines() if "DataFormatError" in line]
    return lines[-1].split("DataFormatError: ", 1)[-1]
