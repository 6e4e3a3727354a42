"""Where a model's randomness comes from on each forward, and the sampling policies that govern it.

A draw is the RNA path (one candidate index per normalization slot) and, for models with CTRW random
weights, one N(0, 1) noise vector covering all of them; a training step that perturbs APART's BN statistics adds
the perturbation to the draw of its passes (``Draw.perturbed``). The controller lives in the core (numpy only); a
backend's model asks it for the draw at the start of every forward, so a model handed to any outside attack
is a genuinely random function.

Policies:
- ``resample`` (default): a fresh draw from the core's Generator on every forward;
- ``frozen()``: one draw on entry, held for the whole block (black-box AT holds the attack's draw for all
  PGD steps, then a new block draws another for the update);
- ``fixed(draw)``: a given path (and noise) for the block (white-box attack on one draw, transfer studies);
  given a bare path, a model with noise gets one noise vector drawn on entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .apart import BNPerturbation
from .paths import PathSpace


@dataclass(frozen=True, eq=False)
class Draw:
    """One forward's draw: its path (int per slot), CTRW noise (float32, or None) and, for an APART pass, the BN
    perturbation every BN layer applies (``rna_core.apart``; None: plain BN). It unpacks as the sample of the
    model's randomness it holds: ``path, noise = draw``."""

    path: np.ndarray
    noise: np.ndarray | None = None
    bn: BNPerturbation | None = None

    def __iter__(self) -> Iterator[np.ndarray | None]:
        yield self.path
        yield self.noise

    def perturbed(self, bn: BNPerturbation | None) -> Draw:
        """This draw with the BN perturbation ``bn``."""
        return Draw(self.path, self.noise, bn)


class DrawController:
    """Hands out draws (paths of ``space``, noise vectors of ``noise_size``) from ``rng`` under the active policy."""

    def __init__(self, space: PathSpace, rng: np.random.Generator, noise_size: int = 0) -> None:
        self.space = space
        self.rng = rng
        self.noise_size = noise_size
        self._held: Draw | None = None
        self._observers: list[Callable[[Draw], None]] = []

    def check_slots(self, num_slots: int, model_name: str) -> None:
        """A model with ``num_slots`` normalization slots needs a path space with as many layers."""
        if self.space.num_layers != num_slots:
            raise ValueError(f"{model_name} has {num_slots} normalization slots but the path space has "
                             f"{self.space.num_layers} layers")

    @property
    def is_random(self) -> bool:
        """True when two draws can differ: more than one path, or random-weight noise."""
        return self.space.is_random or self.noise_size > 0

    def next_draw(self) -> Draw:
        """The draw for the forward that is starting now; notifies observers."""
        d = self._held if self._held is not None else self.draw()
        for fn in self._observers:
            fn(d)
        return d

    def draw(self) -> Draw:
        """A fresh draw from the Generator, without running a forward."""
        path = self.space.sample(self.rng)
        noise = self.rng.standard_normal(self.noise_size, dtype=np.float32) if self.noise_size else None
        return Draw(path, noise)

    @contextmanager
    def fixed(self, draw: Draw | np.ndarray | list[int]) -> Iterator[Draw]:
        """Hold ``draw`` (or a bare path, with noise drawn once on entry) for every forward inside the block."""
        if isinstance(draw, Draw):
            path, noise = draw
        else:
            path, noise = draw, self.draw().noise
        held = Draw(self.space.validate(path), self._check_noise(noise))
        saved, self._held = self._held, held
        try:
            yield held
        finally:
            self._held = saved

    def _check_noise(self, noise: np.ndarray | None) -> np.ndarray | None:
        if self.noise_size == 0:
            return None
        noise = np.asarray(noise, np.float32) if noise is not None else None
        if noise is None or noise.shape != (self.noise_size,):
            raise ValueError(f"this model needs a noise vector of shape ({self.noise_size},), got "
                             f"{None if noise is None else noise.shape}")
        return noise

    @contextmanager
    def frozen(self) -> Iterator[Draw]:
        """Draw once on entry and hold it for the block."""
        with self.fixed(self.draw()) as d:
            yield d

    @contextmanager
    def seeded(self, rng: np.random.Generator) -> Iterator[None]:
        """Draw from ``rng`` inside the block (a seeded evaluation or attack), the model's own Generator after."""
        own, self.rng = self.rng, rng
        try:
            yield
        finally:
            self.rng = own

    @contextmanager
    def observe(self, fn: Callable[[Draw], None]) -> Iterator[None]:
        """Call ``fn(draw)`` on every forward inside the block (used by tests and studies)."""
        self._observers.append(fn)
        try:
            yield
        finally:
            self._observers.remove(fn)


class UnheldController(DrawController):
    """The controller of a user's model whose randomness rna-core does not draw (``classifier.adopt``): one trivial
    path, ``is_random`` as detected, and no way to hold a draw."""

    def __init__(self, random: bool) -> None:
        super().__init__(PathSpace.uniform("bn", 1), np.random.default_rng(0))
        self._random = random

    @property
    def is_random(self) -> bool:
        return self._random

    @contextmanager
    def fixed(self, draw: Draw | np.ndarray | list[int]) -> Iterator[Draw]:
        if self._random:
            raise RuntimeError("this model draws its own randomness: rna-core cannot hold a draw of it")
        yield self.draw()
