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
