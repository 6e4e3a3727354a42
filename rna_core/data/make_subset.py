"""Rebuild the bundled data: ``python -m rna_core.data.make_subset [FASHION_MNIST_DIR]``.

Takes a stratified subset (equal count per class, fixed seed) of Fashion-MNIST's train and test
splits from the IDX files (Debian's ``dataset-fashion-mnist`` installs them in
/usr/share/datasets/fashion-mnist) and writes ``fashion_mnist_subset.npz`` beside this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .datasets import BUNDLED_FILE, stratified_order
from .formats import load_idx_dir

TRAIN_PER_CLASS, TEST_PER_CLASS, SEED = 600, 100, 20221128


def build(src: Path, dst: Path) -> dict[str, tuple[int, ...]]:
    rng = np.random.default_rng(SEED)
    arrays = {}
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        x, y = load_idx_dir(src, split)
        idx = np.sort(stratified_order(y, rng)[: per_class * 10])
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x[idx], y[idx].astype(np.uint8)
        if not (np.bincount(arrays[f"y_{split}"], minlength=10) == per_class).all():
            raise RuntimeError("subset is not stratified")
    np.savez_compressed(dst, **arrays)
    return {k: v.shape for k, v in arrays.items()}


if __name__ == "__main__":
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist")
    print(build(source, Path(__file__).with_name(BUNDLED_FILE)))
