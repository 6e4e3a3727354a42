"""Readers for the published on-disk formats: IDX (MNIST, Fashion-MNIST), CIFAR-10/100 (python and
binary versions), and image folders (ImageNet layout). Arrays come out as uint8 NCHW plus int64 labels."""

from __future__ import annotations

import gzip
import io
import pickle
import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np


class DataFormatError(ValueError):
    """A data directory or file is missing or is not in the expected format."""


def _open(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as e:
        raise DataFormatError(f"{path} is not a complete gzip file ({e})") from None


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's format): magic 0x0000 0x08 ndim, big-endian int32 dims, then uint8 data."""
    raw = _open(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataFormatError(f"{path} is not an unsigned-byte IDX file (bad magic {raw[:4].hex()})")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataFormatError(f"{path} is truncated inside its IDX header ({len(raw)} bytes)")
    dims = np.frombuffer(raw, ">i4", count=ndim, offset=4).astype(int)
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataFormatError(f"{path}: header says {dims.tolist()} ({np.prod(dims)} bytes), file has {data.size}")
    return data.reshape(dims)


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    raise DataFormatError(f"missing {stem}[.gz] in {root}")


def load_idx_dir(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-style directory: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]."""
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(_find(root, f"{prefix}-images-idx3-ubyte"))
    y = read_idx(_find(root, f"{prefix}-labels-idx1-ubyte"))
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise DataFormatError(f"{root}: images {x.shape} and labels {y.shape} do not pair up")
    if y.size and y.max() >= 10:
        raise DataFormatError(f"{root}: {prefix} labels outside [0, 10) (largest {y.max()})")
    return x[:, None], y.astype(np.int64)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles CIFAR's python batches: builtins plus the numpy names needed to rebuild an array."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
               ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise DataFormatError(f"refusing to unpickle {module}.{name}: not a CIFAR data batch")


def _read_cifar_pickle(path: Path, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N x 3 x 32 x 32 uint8) and labels of a CIFAR python batch: a dict whose ``data`` holds N x 3072
    bytes and whose ``key`` holds N integer labels; anything else is a DataFormatError naming the file."""
    try:
        d = _ArrayOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as e:
        raise DataFormatError(f"{path} is not a CIFAR python batch: {e}") from None
    if not isinstance(d, dict):
        raise DataFormatError(f"{path} is not a CIFAR python batch: it holds a {type(d).__name__}, not a dict")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or key not in d:
        raise DataFormatError(f"{path} lacks 'data' or '{key}'")
    try:
        data, labels = np.asarray(d["data"]), np.asarray(d[key])
    except (ValueError, TypeError) as e:
        raise DataFormatError(f"{path}: 'data' or '{key}' is not an array: {e}") from None
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise DataFormatError(f"{path}: 'data' must be N x 3072 uint8 (32 x 32 RGB rows), got {data.dtype} "
                              f"{data.shape}")
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise DataFormatError(f"{path}: '{key}' must be {len(data)} integer labels (one per image), got "
                              f"{labels.dtype} {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _cifar_root(root: Path, names: tuple[str, ...]) -> Path | None:
    for cand in (root, *(root / n for n in names)):
        if cand.is_dir() and any((cand / f).exists() for f in ("data_batch_1", "data_batch_1.bin", "train",
                                                                 "train.bin", "test", "test.bin")):
            return cand
    return None


def load_cifar(root: Path, split: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 (``cifar-10-batches-{py,bin}``) or CIFAR-100 (``cifar-100-{python,binary}``) from ``root``
    or the published sub-directory of it."""
    names = (("cifar-10-batches-py", "cifar-10-batches-bin") if num_classes == 10
             else ("cifar-100-python", "cifar-100-binary"))
    base = _cifar_root(root, names)
    if base is None:
        raise DataFormatError(f"no CIFAR-{num_classes} data in {root}: expected {' or '.join(names)} "
                              "(as published on the CIFAR page) or their files directly in it")
    if num_classes == 10:
        stems = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    else:
        stems = ["train" if split == "train" else "test"]
    xs, ys = [], []
    for stem in stems:
        if (base / stem).is_file():
            x, y = _read_cifar_pickle(base / stem, "labels" if num_classes == 10 else "fine_labels")
            xs.append(x)
            ys.append(y)
        elif (base / f"{stem}.bin").is_file():
            raw = np.frombuffer((base / f"{stem}.bin").read_bytes(), np.uint8)
            head = 1 if num_classes == 10 else 2
            rec = head + 3072
            if raw.size % rec:
                raise DataFormatError(f"{base / stem}.bin: size {raw.size} is not a multiple of {rec}-byte records")
            raw = raw.reshape(-1, rec)
            ys.append(raw[:, head - 1].astype(np.int64))
            xs.append(raw[:, head:].reshape(-1, 3, 32, 32))
        else:
            raise DataFormatError(f"missing {stem} (python) or {stem}.bin (binary) in {base}")
    x, y = np.concatenate(xs), np.concatenate(ys)
    if y.min() < 0 or y.max() >= num_classes:
        raise DataFormatError(f"{base}: labels outside [0, {num_classes})")
    return x, y


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff"}


def list_image_folder(root: Path, classes: list[str] | None = None) -> tuple[list[Path], np.ndarray, list[str]]:
    """``root/<class>/<image>`` (ImageNet's train/val layout): files, labels, sorted class names. With
    ``classes`` (the training split's list) the folder must hold exactly those classes, labelled alike."""
    if not root.is_dir():
        raise DataFormatError(f"image folder {root} does not exist")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not found:
        raise DataFormatError(f"{root} holds no class sub-directories (expected root/<class>/<image>)")
    if classes is not None and found != list(classes):
        missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
        raise DataFormatError(f"{root}: its classes differ from the training split's (missing {missing[:5]}, "
                              f"extra {extra[:5]}): labels would not mean the same class")
    files, labels = [], []
    for i, c in enumerate(found):
        images = [f for f in sorted((root / c).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            raise DataFormatError(f"{root / c}: a class directory without images (suffixes {sorted(IMAGE_SUFFIXES)})")
        files += images
        labels += [i] * len(images)
    return files, np.asarray(labels, np.int64), found


def read_image(path: Path, size: int, channels: int = 3) -> np.ndarray:
    """Decode, resize the shorter side to ``size * 8 / 7`` and center-crop ``size`` (uint8 CHW)."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("image folders need Pillow: pip install 'rna-core[images]' (in a checkout: "
                          "'.[images]')") from None
    try:
        with Image.open(path) as im:
            im = im.convert("RGB" if channels == 3 else "L")
    except (OSError, SyntaxError, ValueError) as e:
        raise DataFormatError(f"{path}: cannot decode the image ({e})") from None
    w, h = im.size
    s = round(size * 8 / 7) / min(w, h)
    im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    arr = np.asarray(im.crop((left, top, left + size, top + size)), np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
