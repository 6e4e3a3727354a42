"""What every backend promises end to end: rna_core.train checkpoints every epoch, a resumed run ends with the
weights, momentum and random streams of an uninterrupted one, and a checkpoint evaluates to the same numbers
however it is named."""

import json
import shutil

import numpy as np
import pytest

import rna_core
from rna_core.checkpoints import load_checkpoint

TINY = {"arch": "small_cnn", "width": 4, "train_samples": 64, "batch_size": 32, "epochs": 2, "eval_samples": 16,
        "train_attack.steps": 1, "eval_attack.steps": 1, "eval_eot": 2, "eval_answers": 2}


def test_train_checkpoint_resume_is_exact(backend, tmp_path):
    full = rna_core.train("quick", backend, tmp_path / "full", progress=False, **TINY)
    assert len(full.history) == 2 and full.checkpoint.name == "ckpt-e0001.json"
    assert {"clean", "PGD-1/paper", "PGD-1/eot", "PGD-1/adaptive", "worst-case/paper",
            "worst-case/adaptive"} <= set(full.final)
    assert json.loads((tmp_path / "full" / "metrics.json").read_text())["test"] == full.final
    crashed = tmp_path / "crashed"  # a crash after the first epoch's checkpoint
    crashed.mkdir()
    for f in ("ckpt-e0000.json", "ckpt-e0000.safetensors"):
        shutil.copy(tmp_path / "full" / f, crashed / f)
    (crashed / "latest.json").write_text(json.dumps({"checkpoint": "ckpt-e0000"}))
    resumed = rna_core.train("quick", backend, crashed, resume=True, progress=False, **TINY)
    a, opt_a, meta_a = load_checkpoint(full.run_dir)
    b, opt_b, meta_b = load_checkpoint(resumed.run_dir)
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
    assert set(opt_a) == set(opt_b) and all(np.array_equal(opt_a[k], opt_b[k]) for k in opt_a)
    assert meta_a["rng"] == meta_b["rng"] and resumed.final == full.final
    with pytest.raises(FileExistsError, match="resume"):
        rna_core.train("quick", backend, crashed, progress=False, **TINY)
    with pytest.raises(ValueError, match="recipe differs in \\['lr'\\]"):
        rna_core.train("quick", backend, crashed, resume=True, progress=False, **dict(TINY, lr=0.5))
    a_eval = rna_core.evaluate_checkpoint(full.run_dir, backend, samples=16, seed=3, progress=False, eot=2)
    b_eval = rna_core.evaluate_checkpoint(full.checkpoint, backend, samples=16, seed=3, progress=False, eot=2)
    assert a_eval == b_eval and 0 <= a_eval["clean"] <= 1


def test_an_image_folder_trains_through_the_backends_pipeline(backend, tmp_path):
    """Random resized crops decoded by the backend's engine (two workers), one rank: the run trains and the same
    run again gives the same weights (every crop from the seed)."""
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp_path / "img" / split / c).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 256, (20 + 4 * i, 24, 3), dtype=np.uint8)).save(
                    tmp_path / "img" / split / c / f"{i}.jpg")
    keys = dict(dataset="imagefolder", data_dir=str(tmp_path / "img"), image_size=16, arch="small_cnn", width=4,
                norms="bn+in", batch_size=4, epochs=1, train_attack=rna_core.pgd(1), eval_attack=None,
                workers=2, progress=False, evaluate_at_end=False)
    runs = [rna_core.train("quick", backend, tmp_path / f"r{i}", **keys) for i in range(2)]
    assert len(runs[0].history) == 1 and np.isfinite(runs[0].history[0]["train_loss"])
    a, b = (load_checkpoint(r.run_dir)[0] for r in runs)
    assert all(np.array_equal(a[k], b[k]) for k in a)
