"""Where a model's path comes from on each forward: the sampling policies of DESIGN.md.

The controller lives in the core (numpy only); a backend's model asks it for the path at the start
of every forward, so a model handed to any outside attack is a genuinely random function.

Policies:
- ``resample`` (default): a fresh path from the core's Generator on every forward;
- ``frozen()``: one path drawn on entry and held for the whole block (black-box AT holds p_a for
  all attack steps, then a new block draws p for the update);
- ``fixed(path)``: a given path for the block (white-box attack on one path, transfer studies).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from .paths import PathSpace


class PathController:
    """Hands out paths of ``space`` drawn from ``rng`` according to the active policy."""

    def __init__(self, space: PathSpace, rng: np.random.Generator) -> None:
        self.space = space
        self.rng = rng
        self._held: np.ndarray | None = None
        self._observers: list[Callable[[np.ndarray], None]] = []
        self.last_path: np.ndarray | None = None

    def check_slots(self, num_slots: int, model_name: str) -> None:
        """A model with ``num_slots`` normalization slots needs a path space with as many layers."""
        if self.space.num_layers != num_slots:
            raise ValueError(f"{model_name} has {num_slots} normalization slots but the path space has "
                             f"{self.space.num_layers} layers")

    @property
    def policy(self) -> str:
        return "resample" if self._held is None else "held"

    def next_path(self) -> np.ndarray:
        """The path for the forward that is starting now; notifies observers."""
        path = self._held if self._held is not None else self.space.sample(self.rng)
        self.last_path = path
        for fn in self._observers:
            fn(path)
        return path

    def draw(self) -> np.ndarray:
        """A fresh path from the Generator, without running a forward."""
        return self.space.sample(self.rng)

    @contextmanager
    def fixed(self, path: np.ndarray | list[int]) -> Iterator[np.ndarray]:
        """Hold ``path`` for every forward inside the block."""
        held = self.space.validate(path)
        saved, self._held = self._held, held
        try:
            yield held
        finally:
            self._held = saved

    @contextmanager
    def frozen(self) -> Iterator[np.ndarray]:
        """Draw one path on entry and hold it for the block."""
        with self.fixed(self.draw()) as p:
            yield p

    @contextmanager
    def observe(self, fn: Callable[[np.ndarray], None]) -> Iterator[None]:
        """Call ``fn(path)`` on every forward inside the block (used by tests and studies)."""
        self._observers.append(fn)
        try:
            yield
        finally:
            self._observers.remove(fn)
