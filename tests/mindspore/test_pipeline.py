"""The ImageNet input pipeline on ``mindspore.dataset``: parallel workers give the core engine's batches (the
same crops, labels and class order), and a worker's error reaches the user as one line naming the file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from rna_core.data import DataFormatError, load_dataset
from rna_core.data.pipeline import ImageSamples, thread_loader
from rna_core.registry import get_backend

pytest.importorskip("PIL.Image")
_spec = importlib.util.spec_from_file_location("pipeline_helpers", Path(__file__).parents[1] / "core" /
                                               "test_pipeline.py")
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)


@pytest.mark.parametrize("workers", [1, 2])
def test_dataset_workers_give_the_core_engines_batches(tmp_path, workers):
    data = load_dataset("imagefolder", "train", helpers.image_folder(tmp_path, per_class=8), image_size=20)
    samples = ImageSamples(data.files, data.y, 20, seed=5, epoch=3)
    idx = np.random.default_rng(0).permutation(len(data))
    want = list(thread_loader(samples, idx, 4, workers=1))
    got = list(get_backend("mindspore").loader(samples, idx, 4, workers=workers))
    assert len(got) == len(want) == 4
    for (x, y), (u, v) in zip(got, want, strict=True):
        assert x.dtype == np.uint8 and np.array_equal(x, u) and np.array_equal(y, v)


def test_a_workers_error_is_one_line_naming_the_file(tmp_path):
    data = load_dataset("imagefolder", "train", helpers.image_folder(tmp_path, per_class=8), image_size=20)
    data.files[5].write_bytes(b"not an image")
    samples = ImageSamples(data.files, data.y, 20)
    with pytest.raises(DataFormatError) as e:
        list(get_backend("mindspore").loader(samples, np.arange(len(data)), 4, workers=2))
    assert "\n" not in str(e.value) and str(e.value).startswith(f"{data.files[5]}: cannot decode")
