"""Both backends' input pipelines read an image folder into the same batches: the same images in the same order,
the same random resized crops and flips, the same labels and class order (torch's DataLoader and
``mindspore.dataset``, two worker processes each)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from rna_core.data import load_dataset
from rna_core.data.pipeline import ImageSamples, rank_indices
from rna_core.registry import get_backend

pytest.importorskip("PIL.Image")
_spec = importlib.util.spec_from_file_location("pipeline_helpers", Path(__file__).parents[1] / "core" /
                                               "test_pipeline.py")
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)


def test_torch_and_mindspore_pipelines_give_the_same_batches(tmp_path):
    data = load_dataset("imagefolder", "train", helpers.image_folder(tmp_path, per_class=8), image_size=20)
    assert load_dataset("imagefolder", "test", tmp_path, image_size=20).classes == data.classes == ["cat", "dog"]
    samples = ImageSamples(data.files, data.y, 20, seed=7, epoch=1)
    for rank in (0, 1):
        idx = rank_indices(np.random.default_rng(1).permutation(len(data)), 8, rank, 2)
        ours = [list(get_backend(b).loader(samples, idx, 4, workers=2)) for b in ("torch", "mindspore")]
        assert len(ours[0]) == len(ours[1]) == 2
        for (x, y), (u, v) in zip(*ours, strict=True):
            assert np.array_equal(x, u) and np.array_equal(y, v)
