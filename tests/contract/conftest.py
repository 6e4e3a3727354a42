"""Shared pieces of the backend contract suite: tiny classifiers and batches (small_cnn, 1 x 12 x 12)."""

from __future__ import annotations

import numpy as np
import pytest

from rna_core.classifier import build_classifier

ARCH = {"name": "small_cnn", "num_classes": 10, "in_channels": 1, "width": 4}


@pytest.fixture(scope="module")
def make_classifier(backend):
    """``make(norms="bn+in", seed=0, **arch)``: a fresh classifier on the module's backend."""

    def make(norms: str = "bn+in", seed: int = 0, layer_free: bool = True, **arch):
        return build_classifier({**ARCH, **arch}, norms, layer_free, backend, np.random.default_rng(seed), seed)

    return make


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(1)
    return rng.random((16, 1, 12, 12), dtype=np.float32), rng.integers(0, 10, 16)
