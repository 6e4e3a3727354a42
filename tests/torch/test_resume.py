"""A run killed with SIGKILL resumes from its last checkpoint and ends with exactly the weights, optimizer state
and random streams of an uninterrupted run (mid-epoch checkpoints included)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import rna_core
from rna_core.checkpoints import load_checkpoint, save_checkpoint
from rna_core.classifier import build_classifier
from rna_core.recipes import get_recipe
from rna_core.training import initialise_from

TINY = {"arch": "small_cnn", "width": 4, "train_samples": 512, "batch_size": 16, "epochs": 2, "eval_samples": 32,
        "train_attack.steps": 2, "eval_attack.steps": 2, "eval_eot": 2, "checkpoint_every": 4}


def _cli_args(out):
    sets = [f"{k}={json.dumps(v)}" for k, v in TINY.items()]
    return [sys.executable, "-m", "rna_core.apps.cli", "train", "--recipe", "quick", "--out", str(out), "--quiet",
            *[a for s in sets for a in ("--set", s)]]


def _kill_when(run_dir, proc, ready) -> str:
    """SIGKILL ``proc`` as soon as latest.json names a checkpoint for which ``ready(tag)`` holds."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        latest = run_dir / "latest.json"
        if latest.is_file():
            tag = json.loads(latest.read_text())["checkpoint"]
            if ready(tag):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return tag
        assert proc.poll() is None, "the run finished before it could be killed: make it longer"
        time.sleep(0.005)
    raise TimeoutError("no checkpoint appeared")


def test_sigkill_then_resume_gives_the_uninterrupted_weights(tmp_path):
    full = rna_core.train("quick", "torch", tmp_path / "full", progress=False, **TINY)
    a, opt_a, meta_a = load_checkpoint(full.run_dir)
    points = {"mid-epoch": lambda t: t.startswith("ckpt-e0001-s"), "epoch-end": lambda t: t == "ckpt-e0000"}
    for name, ready in points.items():
        run = tmp_path / name
        proc = subprocess.Popen(_cli_args(run), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        killed_at = _kill_when(run, proc, ready)
        assert proc.returncode == -signal.SIGKILL and not (run / "metrics.json").exists()
        (run / f".{killed_at}.safetensors.x1y2.tmp").write_bytes(b"half a checkpoint")  # a write cut short
        resumed = rna_core.train("quick", "torch", run, resume=True, progress=False, **TINY)
        assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp")), "stale temporaries are removed"
        b, opt_b, meta_b = load_checkpoint(resumed.run_dir)
        assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a), f"weights differ ({killed_at})"
        assert all(np.array_equal(opt_a[k], opt_b[k]) for k in opt_a), f"momentum differs ({killed_at})"
        assert meta_a["rng"] == meta_b["rng"] and resumed.final == full.final
        assert [h["train_loss"] for h in meta_a["history"]] == [h["train_loss"] for h in meta_b["history"]]


def test_a_diverging_run_stops_and_keeps_its_last_finite_checkpoint(tmp_path):
    from rna_core.training import TrainingDiverged

    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"at epoch 0|non-finite weights"):
        rna_core.train("quick", "torch", run, progress=False, evaluate_at_end=False,
                       **dict(TINY, epochs=1, checkpoint_every=1, method="clean", lr=1e30))
    assert not (run / "metrics.json").exists()
    state, _, meta = load_checkpoint(run)  # what was kept is finite (load refuses anything else)
    state[next(iter(state))] = np.full_like(state[next(iter(state))], np.nan)
    save_checkpoint(tmp_path / "nan", "ckpt-e0000", state, {}, meta)
    with pytest.raises(ValueError, match="non-finite values"):
        load_checkpoint(tmp_path / "nan")



def test_init_checkpoint_starts_an_rna_model_from_a_bn_model(tmp_path):
    bn = rna_core.train("quick", "torch", tmp_path / "bn", progress=False, evaluate_at_end=False,
                        **dict(TINY, epochs=1, norms="bn", method="clean", checkpoint_every=0))
    source, _, meta = load_checkpoint(bn.run_dir)
    recipe = get_recipe("quick", **dict(TINY, init_checkpoint=str(bn.run_dir)))
    clf = build_classifier({"name": "small_cnn", "num_classes": 10, "in_channels": 1, "width": 4}, "bn+in", True,
                           "torch", np.random.default_rng(0), seed=1)
    initialise_from(clf, recipe.init_checkpoint, verbose=False)
    state = clf.backend.get_state(clf.model)
    assert set(source) < set(state) and all(np.array_equal(state[k], v) for k, v in source.items())
    save_checkpoint(tmp_path / "other", "ckpt-e0000", {"foo": np.zeros(3, np.float32)}, {}, meta)
    with pytest.raises(ValueError, match="shares no parameter"):
        initialise_from(clf, str(tmp_path / "other"), verbose=False)
    wide = {**{k: np.zeros((*v.shape[:-1], v.shape[-1] + 1), v.dtype) if v.ndim else v for k, v in source.items()},
            "conv1.weight": source["conv1.weight"]}  # another width: one entry of many fits
    save_checkpoint(tmp_path / "wide", "ckpt-e0000", wide, {}, meta)
    with pytest.raises(ValueError, match=r"only \d+ of its \d+ entries fit this model .* init_partial"):
        initialise_from(clf, str(tmp_path / "wide"), verbose=False)
    initialise_from(clf, str(tmp_path / "wide"), verbose=False, partial=True)
