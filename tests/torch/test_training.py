"""End to end on the bundled data with a tiny network: train, checkpoint, resume, evaluate, CLI."""

import json
import shutil

import numpy as np
import pytest

import rna_core
from rna_core.checkpoints import load_checkpoint
from rna_core.cli import main

TINY = {"width": 4, "train_samples": 256, "batch_size": 64, "epochs": 2, "eval_samples": 64,
        "train_attack.steps": 2, "eval_attack.steps": 3, "eval_eot": 2}


def test_train_checkpoint_resume_is_exact(tmp_path):
    full = rna_core.train("quick", "torch", tmp_path / "full", progress=False, **TINY)
    assert len(full.history) == 2 and full.checkpoint.name == "ckpt-e0001.json"
    assert {"clean", "PGD-3/paper", "PGD-3/fixed-path", "PGD-3/eot", "PGD-3/adaptive", "worst-case/paper",
            "worst-case/adaptive"} <= set(full.final)
    assert full.final["PGD-3/adaptive"] <= min(full.final["PGD-3/fixed-path"], full.final["PGD-3/eot"])
    assert json.loads((tmp_path / "full" / "metrics.json").read_text())["test"] == full.final

    # a crash after the first epoch's checkpoint: keep only what existed then, and resume
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for f in ("ckpt-e0000.json", "ckpt-e0000.safetensors"):
        shutil.copy(tmp_path / "full" / f, crashed / f)
    (crashed / "latest.json").write_text(json.dumps({"checkpoint": "ckpt-e0000"}))
    resumed = rna_core.train("quick", "torch", crashed, resume=True, progress=False, **TINY)
    a, opt_a, meta_a = load_checkpoint(full.run_dir)
    b, opt_b, meta_b = load_checkpoint(resumed.run_dir)
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
    assert all(np.array_equal(opt_a[k], opt_b[k]) for k in opt_a)
    assert meta_a["rng"] == meta_b["rng"] and resumed.final == full.final

    with pytest.raises(FileExistsError, match="resume"):
        rna_core.train("quick", "torch", crashed, progress=False, **TINY)
    with pytest.raises(ValueError, match="recipe differs in \\['lr'\\]"):
        rna_core.train("quick", "torch", crashed, resume=True, progress=False, **dict(TINY, lr=0.5))


def test_checkpoint_evaluates_with_same_numbers(tmp_path):
    res = rna_core.train("quick", "torch", tmp_path, progress=False, **dict(TINY, epochs=1))
    a = rna_core.evaluate_checkpoint(tmp_path, "torch", samples=64, seed=3, progress=False)
    b = rna_core.evaluate_checkpoint(res.checkpoint, "torch", samples=64, seed=3, progress=False)
    assert a == b and 0 <= a["clean"] <= 1


def test_cli_train_evaluate_and_errors(tmp_path, capsys):
    assert main(["recipes"]) == 0
    assert "paper-cifar10-rna" in capsys.readouterr().out
    sets = [arg for k, v in dict(TINY, epochs=1).items() for arg in ("--set", f"{k}={v}")]
    assert main(["train", "--recipe", "quick", *sets, "--set", "norms=bn", "--set", "method=madry",
                 "--out", str(tmp_path / "bn"), "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["test"]["PGD-3/white-box"] <= out["test"]["clean"]
    assert main(["evaluate", str(tmp_path / "bn"), "--samples", "32", "--attacks", "pgd:2,fgsm", "--quiet",
                 "--report", str(tmp_path / "report")]) == 0
    text = capsys.readouterr().out
    assert "| model | protocol | Natural | FGSM | PGD-2 | worst case |" in text and "| white-box |" in text
    assert json.loads((tmp_path / "report.json").read_text())["metrics"]["protocol"] == "white-box"
    assert main(["train", "--set", "epoch=1", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "unknown recipe key 'epoch'" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing"), "--quiet"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
