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

from rna_core.checkpoints import load_checkpoint

WORKER = Path(__file__).parents[1] / "workers" / "train_and_log_paths.py"
RECIPE = {"arch": "small_cnn", "width": 4, "norms": "in+ln", "train_samples": 128, "batch_size": 32, "epochs": 2,
          "method": "clean"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_msrun_two_workers_match_one_process(tmp_path):
    bin_dir = str(Path(sys.executable).parent)  # msrun starts workers with the `python` on PATH
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}
    args = [str(WORKER), "mindspore"]
    single = subprocess.run([sys.executable, *args, str(tmp_path / "single"), json.dumps(RECIPE)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    msrun = shutil.which("msrun", path=env["PATH"])
    dp = subprocess.run([msrun, "--worker_num=2", "--local_worker_num=2", f"--master_port={_free_port()}",
                         "--join=True", f"--log_dir={tmp_path / 'logs'}", *args, str(tmp_path / "dp"),
                         json.dumps(RECIPE)], env=env, capture_output=True, text=True, timeout=600)
    logs = "".join(p.read_text()[-2000:] for p in (tmp_path / "logs").glob("worker_*.log"))
    assert dp.returncode == 0, logs
    a, opt_a, meta_a = load_checkpoint(tmp_path / "single")
    b, opt_b, meta_b = load_checkpoint(tmp_path / "dp")
    assert meta_b["epoch"] == 1 and meta_a["rng"] == meta_b["rng"]
    for ref, got in ((a, b), (opt_a, opt_b)):
        for k in ref:
            assert np.abs(got[k] - ref[k]).max() <= 1e-4 * np.abs(ref[k]).max(), k
    paths = [json.loads((tmp_path / "dp" / f"paths-{r}.json").read_text()) for r in (0, 1)]
    one = json.loads((tmp_path / "single" / "paths-0.json").read_text())
    assert paths[0] == paths[1] == one and len(one) == 2 * 4 and len({tuple(p) for p in one}) > 1
