"""Data parallel under msrun (2 CPU workers, DATA_PARALLEL with the gradient mean, GRAPH_MODE): the same
parameters as one process on the full batch, and every rank drew the same paths."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rna_core.checkpoints import load_checkpoint

WORKER = Path(__file__).parents[1] / "workers" / "train_and_log_paths.py"
RECIPE = {"arch": "small_cnn", "width": 4, "norms": "in+ln", "train_samples": 128, "batch_size": 32, "epochs": 2,
          "method": "clean"}
# SyncBN for one step (see tests/torch/test_distributed.py); MindSpore's CPU sums round a little more than torch's
# (3e-5 of a tensor's largest entry, torch 6e-6)
SYNC_BN = {**RECIPE, "norms": "bn", "sync_bn": True, "epochs": 1, "train_samples": 32}
TOL = 1e-4  # of each tensor's largest entry, both recipes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("recipe", [RECIPE, SYNC_BN], ids=["in+ln", "bn-syncbn"])
def test_msrun_two_workers_match_one_process(tmp_path, recipe):
    bin_dir = str(Path(sys.executable).parent)  # msrun starts workers with the `python` on PATH
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}
    args = [str(WORKER), "mindspore"]
    single = subprocess.run([sys.executable, *args, str(tmp_path / "single"), json.dumps(recipe)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    msrun = shutil.which("msrun", path=env["PATH"])
    dp = subprocess.run([msrun, "--worker_num=2", "--local_worker_num=2", f"--master_port={_free_port()}",
                         "--join=True", f"--log_dir={tmp_path / 'logs'}", *args, str(tmp_path / "dp"),
                         json.dumps(recipe)], env=env, capture_output=True, text=True, timeout=600)
    logs = "".join(p.read_text()[-2000:] for p in (tmp_path / "logs").glob("worker_*.log"))
    assert dp.returncode == 0, logs
    a, opt_a, meta_a = load_checkpoint(tmp_path / "single")
    b, opt_b, meta_b = load_checkpoint(tmp_path / "dp")
    assert meta_b["epoch"] == recipe["epochs"] - 1 and meta_a["rng"] == meta_b["rng"]
    for ref, got, t in ((a, b, TOL), (opt_a, opt_b, 10 * TOL)):
        for k in ref:
            assert np.abs(got[k] - ref[k]).max() <= t * np.abs(ref[k]).max() + 1e-5, k  # BN biases are ~1e-3
    paths = [json.loads((tmp_path / "dp" / f"paths-{r}.json").read_text()) for r in (0, 1)]
    one = json.loads((tmp_path / "single" / "paths-0.json").read_text())
    assert paths[0] == paths[1] == one and len(one) == recipe["epochs"] * recipe["train_samples"] // 32
    assert len({tuple(p) for p in one}) > 1 or recipe["norms"] == "bn"
