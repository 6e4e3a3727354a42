"""Data parallel under torchrun (gloo, 2 CPU processes): the same parameters as one process on the full batch,
and every rank drew the same paths."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rna_core.checkpoints import load_checkpoint

WORKER = Path(__file__).parents[1] / "workers" / "train_and_log_paths.py"
# random paths without batch statistics (IN/LN), so the shards' gradients average to the full batch's exactly.
# (With PGD in the loop the runs drift apart by ~1e-4 relative after 8 steps: oneDNN picks different
# convolution kernels for batch 16 and 32, and PGD's sign steps turn the last-bit differences at near-zero
# gradient components into different pixels.)
RECIPE = {"arch": "small_cnn", "width": 4, "norms": "in+ln", "train_samples": 128, "batch_size": 32, "epochs": 2,
          "method": "clean"}
# BN with the global batch's statistics (SyncBN), one step: BN training at batch 32 amplifies last-bit differences
# (one process uses the fused batch_norm, the ranks an all-reduced two-pass formula) from ~6e-6 after one step
# to ~1e-3 after eight; without SyncBN the ranks normalize with their own shard and differ by 1e-2 and more.
SYNC_BN = {**RECIPE, "norms": "bn", "sync_bn": True, "epochs": 1, "train_samples": 32}
TOL = 1e-4  # of each tensor's largest entry, both recipes


def _largest_difference(a: dict, b: dict) -> float:
    return max(float(np.abs(b[k] - a[k]).max() / max(np.abs(a[k]).max(), 1e-12)) for k in a)


def _run(cmd, out, recipe):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*cmd, str(WORKER), "torch", str(out), json.dumps(recipe)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("recipe", [RECIPE, SYNC_BN], ids=["in+ln", "bn-syncbn"])
def test_torchrun_two_processes_match_one_process(tmp_path, recipe):
    _run([sys.executable], tmp_path / "single", recipe)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], tmp_path / "ddp",
         recipe)
    a, opt_a, meta_a = load_checkpoint(tmp_path / "single")
    b, opt_b, meta_b = load_checkpoint(tmp_path / "ddp")
    assert meta_b["epoch"] == recipe["epochs"] - 1 and meta_a["rng"] == meta_b["rng"]
    assert _largest_difference(a, b) <= TOL and _largest_difference(opt_a, opt_b) <= 10 * TOL
    if recipe.get("sync_bn"):  # the test can tell: without SyncBN the ranks normalize with their own shard
        _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"],
             tmp_path / "local", {**recipe, "sync_bn": False})
        assert _largest_difference(a, load_checkpoint(tmp_path / "local")[0]) > 10 * TOL
    paths = [json.loads((tmp_path / "ddp" / f"paths-{r}.json").read_text()) for r in (0, 1)]
    single = json.loads((tmp_path / "single" / "paths-0.json").read_text())
    assert paths[0] == paths[1] == single and len(single) == recipe["epochs"] * recipe["train_samples"] // 32
    assert len({tuple(p) for p in single}) > 1 or recipe["norms"] == "bn"
