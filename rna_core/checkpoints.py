"""Checkpoints: safetensors weights under canonical names plus a JSON sidecar, written atomically.

A checkpoint ``ckpt-e0007`` (after epoch 7) or ``ckpt-e0007-s000200`` (after 200 steps of epoch 7, with the
epoch's data-stream state so a resumed run replays the same order) in a run directory is two files,
``<tag>.safetensors`` (model state, and optimizer state under ``optimizer.``) and ``<tag>.json`` (recipe, path
space, architecture, epoch, RNG states, metric history, the weights' SHA-256). ``latest.json`` names the newest complete
checkpoint and is replaced last, so a crash at any moment leaves the previous one intact. Nothing is
ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

FORMAT = "rna-core-checkpoint/1"
OPT_PREFIX = "optimizer."


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory (mode from the user's umask), fsync, then rename over
    ``path``; a failed write (disk full, read-only storage) leaves ``path`` as it was and says so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(e.errno, f"could not write {path} ({e.strerror}); the last complete checkpoint in "
                               f"{path.parent} is intact") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the ``.*.tmp`` files a killed write left in ``run_dir`` (call only while holding its lock)."""
    stale = sorted(run_dir.glob(".*.tmp"))
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def save_checkpoint(run_dir: str | Path, tag: str, model_state: dict[str, np.ndarray],
                    optimizer_state: dict[str, np.ndarray], meta: dict, keep: int = 2) -> Path:
    """Write ``tag`` into ``run_dir``, point ``latest.json`` at it, keep the newest ``keep`` checkpoints."""
    run_dir = Path(run_dir)
    tensors = {k: np.ascontiguousarray(v) for k, v in model_state.items()}
    tensors.update({OPT_PREFIX + k: np.ascontiguousarray(v) for k, v in optimizer_state.items()})
    blob = st_save(tensors, metadata={"format": FORMAT})
    weights = run_dir / f"{tag}.safetensors"
    atomic_write(weights, blob)
    sidecar = dict(meta, format=FORMAT, weights=weights.name, sha256=hashlib.sha256(blob).hexdigest())
    atomic_write(run_dir / f"{tag}.json", json.dumps(sidecar, indent=1).encode())
    atomic_write(run_dir / "latest.json", json.dumps({"checkpoint": tag}).encode())
    tags = sorted((p.stem for p in run_dir.glob("ckpt-*.json")), key=_order)
    for old in tags[:-keep] if keep > 0 else []:
        for suffix in (".json", ".safetensors"):
            (run_dir / f"{old}{suffix}").unlink(missing_ok=True)
    return run_dir / f"{tag}.json"


def _order(tag: str) -> tuple[int, float]:
    """Training order of checkpoint tags: ``ckpt-e0003-s000020`` (mid-epoch) before ``ckpt-e0003`` (epoch end)."""
    m = re.fullmatch(r"ckpt-e(\d+)(?:-s(\d+))?", tag)
    if m is None:
        return (-1, 0.0)
    return (int(m[1]), float(m[2]) if m[2] else float("inf"))


def _local_name(name: object, source: Path) -> str:
    """A file name inside the run directory: no separators, no ``..``, no absolute path."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", "..") \
            or name.startswith(".."):
        raise ValueError(f"{source} names {name!r}: checkpoint files must lie in their own run directory")
    return name


def read_json(path: Path, what: str) -> dict:
    """The JSON object in ``path``; broken JSON, or anything but an object, is a ValueError naming the file."""
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not a readable {what} (broken JSON: {e})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} is not a {what}: it holds a {type(value).__name__}, not a JSON object")
    return value


# what a sidecar must hold: key -> (types, what it is); the recipe is checked by ``Recipe.from_dict``
SIDECAR = {"format": (str, "the format tag"), "weights": (str, "the weights' file"), "sha256": (str, "their hash"),
           "recipe": (dict, "the recipe"), "arch": (dict, "the architecture"), "path_space": (dict, "the path space"),
           "epoch": (int, "the epoch"), "history": (list, "the metric history"), "rng": (dict, "the random streams")}
PARTIAL = {"step": (int, "steps done"), "sums": (list, "running sums"), "data_rng": (dict, "the data stream")}


def check_sidecar(meta: dict, path: Path) -> dict:
    """``meta`` if it holds every key of ``SIDECAR`` (and of ``PARTIAL`` under ``partial``) with its type; else a
    ValueError naming the file and the key."""
    for keys, holder, where in ((SIDECAR, meta, ""), (PARTIAL, meta.get("partial"), "partial.")):
        if holder is None and where:
            continue
        if not isinstance(holder, dict):
            raise ValueError(f"{path}: sidecar key 'partial' must be an object, got {holder!r}")
        for key, (kind, what) in keys.items():
            value = holder.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"{path}: sidecar key '{where}{key}' ({what}) must be a {kind.__name__}, got "
                                 f"{'nothing' if key not in holder else repr(value)[:60]}")
    if meta["epoch"] < 0 or any(not isinstance(h, dict) or not all(isinstance(h.get(k), int | float) for k in
                                                                      ("train_loss", "train_acc")) for h in
                                meta["history"]):
        raise ValueError(f"{path}: sidecar keys 'epoch' / 'history' are not an epoch and its per-epoch metrics")
    return meta


def resolve(path: str | Path) -> Path:
    """The sidecar JSON of a checkpoint given as a run directory, a .json or a .safetensors path."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no checkpoint at {p}")
    if p.is_dir():
        latest = p / "latest.json"
        if not latest.is_file():
            raise FileNotFoundError(f"{p} holds no checkpoint (missing latest.json)")
        p = p / (_local_name(read_json(latest, "latest.json").get("checkpoint"), latest) + ".json")
    elif p.suffix == ".safetensors":
        p = p.with_suffix(".json")
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint sidecar {p} not found")
    return p


def load_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    """(model state, optimizer state, sidecar metadata); the weights' hash is checked."""
    sidecar = resolve(path)
    meta = read_json(sidecar, "checkpoint sidecar")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{sidecar}: not an rna-core checkpoint (format {meta.get('format')!r})")
    check_sidecar(meta, sidecar)
    blob_path = sidecar.parent / _local_name(meta.get("weights"), sidecar)
    if not blob_path.is_file():
        raise FileNotFoundError(f"weights {blob_path} named by {sidecar} are missing")
    blob = blob_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta["sha256"]:
        raise ValueError(f"{blob_path} does not match the hash recorded in {sidecar} (truncated or replaced)")
    tensors = st_load(blob)
    bad = [k for k, v in tensors.items() if np.issubdtype(v.dtype, np.floating) and not np.isfinite(v).all()]
    if bad:
        raise ValueError(f"{blob_path} holds non-finite values in {bad[:5]}: a diverged run, not a model to load")
    model = {k: v for k, v in tensors.items() if not k.startswith(OPT_PREFIX)}
    opt = {k[len(OPT_PREFIX):]: v for k, v in tensors.items() if k.startswith(OPT_PREFIX)}
    return model, opt, meta


def rng_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state
