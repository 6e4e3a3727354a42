"""Data-parallel training as the core sees it: a World (this process's rank, the number of processes) and the
rule that splits a global batch between them.

Every rank seeds the same Generators from the recipe (data, path, attack, eval), so in lockstep each draws the
same global batch, the same RNA path and CTRW noise, and the same attack random numbers, with no communication:
all ranks run the same path each step, which keeps DDP's gradient buckets (the same parameters used on every
rank) and MindSpore's reducer consistent. Rank r trains on the r-th contiguous shard of every global batch (the
distributed sampler: the union of the shards is exactly the single-process batch); the backend averages the
gradients across ranks; rank 0 alone writes checkpoints and metrics and evaluates. A consequence of the shared
attack stream: a PGD random start is drawn for a shard, so rank r's example i starts from the same noise as
rank 0's example i (different images; within a rank the starts are independent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.size:
            raise ValueError(f"rank {self.rank} outside a world of {self.size} processes")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """This rank's contiguous share of a global batch; the batch must split evenly."""
        if self.size == 1:
            return x, y
        if len(x) % self.size:
            raise ValueError(f"a global batch of {len(x)} does not split evenly over {self.size} processes "
                             "(recipe key batch_size)")
        k = len(x) // self.size
        return x[self.rank * k:(self.rank + 1) * k], y[self.rank * k:(self.rank + 1) * k]
