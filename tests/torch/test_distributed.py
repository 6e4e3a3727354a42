"""Data parallel under torchrun (gloo, 2 CPU processes): the same parameters as one process on the full batch,
and every rank drew the same paths."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from rna_core.checkpoints import load_checkpoint

WORKER = Path(__file__).parents[1] / "workers" / "train_and_log_paths.py"
# random paths without batch statistics (IN/LN), so the shards' gradients average to the full batch's exactly.
# (With PGD in the loop the runs drift apart by ~1e-4 relative after 8 steps: oneDNN picks different
# convolution kernels for batch 16 and 32, and PGD's sign steps turn the last-bit differences at near-zero
# gradient components into different pixels.)
RECIPE = {"arch": "small_cnn", "width": 4, "norms": "in+ln", "train_samples": 128, "batch_size": 32, "epochs": 2,
          "method": "clean"}


def _run(cmd, out):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*cmd, str(WORKER), "torch", str(out), json.dumps(RECIPE)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_torchrun_two_processes_match_one_process(tmp_path):
    _run([sys.executable], tmp_path / "single")
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], tmp_path / "ddp")
    a, opt_a, meta_a = load_checkpoint(tmp_path / "single")
    b, opt_b, meta_b = load_checkpoint(tmp_path / "ddp")
    assert meta_b["epoch"] == 1 and meta_a["rng"] == meta_b["rng"]
    for ref, got in ((a, b), (opt_a, opt_b)):
        for k in ref:
            assert np.abs(got[k] - ref[k]).max() <= 1e-4 * np.abs(ref[k]).max(), k
    paths = [json.loads((tmp_path / "ddp" / f"paths-{r}.json").read_text()) for r in (0, 1)]
    single = json.loads((tmp_path / "single" / "paths-0.json").read_text())
    assert paths[0] == paths[1] == single and len(single) == 2 * 4  # 2 epochs x 4 steps
    assert len({tuple(p) for p in single}) > 1
