import json

import numpy as np
import pytest

from rna_core.checkpoints import load_checkpoint, resolve, save_checkpoint

# the smallest sidecar ``check_sidecar`` accepts
META = {"recipe": {}, "arch": {}, "path_space": {}, "epoch": 0, "history": [], "rng": {}}


def _state(v: float):
    return {"a.weight": np.full((2, 3), v, np.float32), "a.running_var": np.ones(3, np.float32)}


def test_round_trip_latest_and_pruning(tmp_path):
    for epoch in range(4):
        save_checkpoint(tmp_path, f"ckpt-e{epoch:04d}", _state(epoch), {"momentum.a.weight": np.zeros((2, 3))},
                        dict(META, epoch=epoch), keep=2)
    assert resolve(tmp_path).name == "ckpt-e0003.json"
    assert sorted(p.name for p in tmp_path.glob("ckpt-*")) == [
        "ckpt-e0002.json", "ckpt-e0002.safetensors", "ckpt-e0003.json", "ckpt-e0003.safetensors"]
    model, opt, meta = load_checkpoint(tmp_path)
    assert meta["epoch"] == 3 and (model["a.weight"] == 3).all() and set(opt) == {"momentum.a.weight"}
    assert not list(tmp_path.glob(".*tmp"))


def test_corruption_and_missing_files_are_named(tmp_path):
    save_checkpoint(tmp_path, "ckpt-e0000", _state(1), {}, META)
    blob = tmp_path / "ckpt-e0000.safetensors"
    blob.write_bytes(blob.read_bytes()[:-4])
    with pytest.raises(ValueError, match="does not match the hash"):
        load_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="missing latest.json"):
        load_checkpoint(tmp_path / "empty")
    (tmp_path / "x.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not an rna-core checkpoint"):
        load_checkpoint(tmp_path / "x.json")
