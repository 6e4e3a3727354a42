"""Path spaces of RNA (Sec. 4 of the paper): which normalization each layer uses on one forward.

A *path* is an integer array ``p`` of length L; ``p[l]`` indexes the candidate list of layer ``l``.
Layer-free spaces draw every layer independently (size prod_l n_l = n^L); tied spaces draw one
index for all layers (size n), the "layer-based constraint" of Table 5.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .norms import NormSpec, parse_norms


@dataclass(frozen=True)
class PathSpace:
    """Per-layer candidate lists plus the sampling rule.

    >>> space = PathSpace.uniform("bn+in", num_layers=20)
    >>> space.size == 2**20
    True
    """

    candidates: tuple[tuple[NormSpec, ...], ...]
    layer_free: bool = True

    def __post_init__(self) -> None:
        if not self.candidates:
            raise ValueError("a path space needs at least one layer")
        if any(not c for c in self.candidates):
            raise ValueError("every layer needs at least one normalization candidate")
        if not self.layer_free and len({len(c) for c in self.candidates}) != 1:
            raise ValueError("a tied path space needs the same number of candidates in every layer")

    @classmethod
    def uniform(cls, norms: str | Sequence[str | NormSpec], num_layers: int, layer_free: bool = True) -> PathSpace:
        """The same candidate list in each of ``num_layers`` layers."""
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        specs = parse_norms(norms)
        return cls(tuple(specs for _ in range(num_layers)), layer_free)

    @property
    def num_layers(self) -> int:
        return len(self.candidates)

    @property
    def counts(self) -> np.ndarray:
        """Number of candidates per layer, n_l."""
        return np.array([len(c) for c in self.candidates], dtype=np.int64)

    @property
    def is_random(self) -> bool:
        return self.size > 1

    @property
    def size(self) -> int:
        """Exact number of distinct paths: prod_l n_l if layer-free, n if tied (a Python int, no overflow)."""
        if not self.layer_free:
            return len(self.candidates[0])
        return math.prod(len(c) for c in self.candidates)

    def sample(self, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
        """Draw one path (shape (L,)) or ``n`` paths (shape (n, L)), uniformly over the space."""
        shape = (1 if n is None else n, self.num_layers)
        if self.layer_free:
            paths = rng.integers(0, self.counts, size=shape)
        else:
            paths = np.repeat(rng.integers(0, len(self.candidates[0]), size=(shape[0], 1)), self.num_layers, axis=1)
        paths = paths.astype(np.int64)
        return paths[0] if n is None else paths

    def validate(self, path: Sequence[int] | np.ndarray) -> np.ndarray:
        """Return ``path`` as an int64 array after checking its length, range and (if tied) constancy."""
        p = np.asarray(path)
        if p.shape != (self.num_layers,) or not np.issubdtype(p.dtype, np.integer):
            raise ValueError(f"a path must be {self.num_layers} integers, got shape {p.shape} dtype {p.dtype}")
        if (p < 0).any() or (p >= self.counts).any():
            raise ValueError(f"path {p.tolist()} is out of range for candidate counts {self.counts.tolist()}")
        if not self.layer_free and (p != p[0]).any():
            raise ValueError(f"path {p.tolist()} is not constant although the space is tied")
        return p.astype(np.int64)

    def fixed(self, index: int) -> np.ndarray:
        """The path that uses candidate ``index`` in every layer (e.g. the all-BN path)."""
        return self.validate(np.full(self.num_layers, index))

    def summary(self) -> str:
        """``bn+in x 20 layers, layer-free`` (or each layer's candidates when they differ)."""
        names = ["+".join(s.name for s in c) for c in self.candidates]
        which = names[0] if len(set(names)) == 1 else ", ".join(names)
        return f"{which} x {self.num_layers} layers, {'layer-free' if self.layer_free else 'tied'}"

    def describe(self, path: Sequence[int] | np.ndarray) -> list[str]:
        """Spec names along a path."""
        p = self.validate(path)
        return [self.candidates[i][k].name for i, k in enumerate(p)]

    @staticmethod
    def hamming(p: Sequence[int] | np.ndarray, q: Sequence[int] | np.ndarray) -> int:
        """Path difference of Sec. 5.2: the number of layers whose normalization differs."""
        p, q = np.asarray(p), np.asarray(q)
        if p.shape != q.shape:
            raise ValueError(f"paths of different lengths: {p.shape} vs {q.shape}")
        return int((p != q).sum())

    def to_dict(self) -> dict:
        return {"layer_free": self.layer_free, "candidates": [[s.name for s in c] for c in self.candidates]}

    @classmethod
    def from_dict(cls, d: dict) -> PathSpace:
        try:
            return cls(tuple(parse_norms(c) for c in d["candidates"]), bool(d["layer_free"]))
        except KeyError as e:
            raise ValueError(f"path space JSON lacks key {e}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> PathSpace:
        return cls.from_dict(json.loads(text))
