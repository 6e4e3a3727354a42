"""The ImageNet input pipeline on torch's DataLoader: worker processes give the core engine's batches, a worker's
error reaches the user as one line naming the file, and a run on an image folder trains on random resized crops
that a resumed run replays (the same weights as an uninterrupted run)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import rna_core
from rna_core.data import DataFormatError, load_dataset
from rna_core.data.pipeline import ImageSamples, thread_loader
from rna_core.registry import get_backend

pytest.importorskip("PIL.Image")
_spec = importlib.util.spec_from_file_location("pipeline_helpers", Path(__file__).parents[1] / "core" /
                                               "test_pipeline.py")
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)


@pytest.fixture
def folder(tmp_path):
    return helpers.image_folder(tmp_path / "images", per_class=8)


def test_worker_processes_give_the_core_engines_batches(folder):
    data = load_dataset("imagefolder", "train", folder, image_size=20)
    samples = ImageSamples(data.files, data.y, 20, seed=5, epoch=3)
    idx = np.random.default_rng(0).permutation(len(data))
    want = list(thread_loader(samples, idx, 4, workers=1))
    got = list(get_backend("torch").loader(samples, idx, 4, workers=2))
    assert len(got) == len(want) == 4
    for (x, y), (u, v) in zip(got, want, strict=True):
        assert x.dtype == np.uint8 and np.array_equal(x, u) and np.array_equal(y, v)


def test_a_workers_error_is_one_line_naming_the_file(folder):
    data = load_dataset("imagefolder", "train", folder, image_size=20)
    data.files[5].write_bytes(b"not an image")
    samples = ImageSamples(data.files, data.y, 20)
    with pytest.raises(DataFormatError) as e:
        list(get_backend("torch").loader(samples, np.arange(len(data)), 4, workers=2))
    assert "\n" not in str(e.value) and str(e.value).startswith(f"{data.files[5]}: cannot decode")


def test_an_image_folder_run_resumes_to_the_uninterrupted_weights(folder, tmp_path, monkeypatch):
    """Killed mid-epoch (after its second-epoch step-2 checkpoint), the run resumes there: the epoch's order from
    the saved data stream, the pipeline started at the step, the same crops."""
    from rna_core.training.callbacks import Checkpoints

    keys = dict(dataset="imagefolder", data_dir=str(folder), image_size=24, arch="small_cnn", width=4, norms="bn+in",
                batch_size=4, train_attack=rna_core.pgd(1), eval_attack=None, eval_samples=8, workers=2, lr=0.05,
                schedule="constant", epochs=2, checkpoint_every=1, evaluate_at_end=False, progress=False)
    whole = rna_core.train("quick", "torch", tmp_path / "whole", **keys)
    save, calls = Checkpoints.save, []

    def killed_after_six(state, inside=None):  # e0 s1 s2 s3, e0 end, e1 s1, e1 s2: killed
        save(state, inside)
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpoints, "save", staticmethod(killed_after_six))
    with pytest.raises(KeyboardInterrupt):
        rna_core.train("quick", "torch", tmp_path / "parts", **keys)
    monkeypatch.setattr(Checkpoints, "save", staticmethod(save))
    parts = rna_core.train("quick", "torch", tmp_path / "parts", resume=True, **keys)
    a, b = (r.classifier.backend.get_state(r.classifier.model) for r in (whole, parts))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert whole.history[1]["train_loss"] == parts.history[1]["train_loss"]
