"""Tiny-ImageNet (Le & Yang 2015) read from its published layout (``docs/methods.md``): ``wnids.txt`` (the 200
class ids, one per line), ``train/<wnid>/images/*.JPEG`` (500 per class) and ``val/images/*.JPEG`` labelled by
``val/val_annotations.txt`` (tab-separated: file, wnid, box). Images are 64 x 64 RGB (grayscale ones converted);
the test split is ``val`` (the published test images carry no labels). Classes are numbered in sorted wnid order,
as an image folder over ``train/`` numbers them, whatever the order of ``wnids.txt``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .formats import DataFormatError

SIZE, CLASSES = 64, 200
JPEG = (".jpeg", ".jpg")


def load_tiny_imagenet(root: Path, split: str, progress: bool = True) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(uint8 images N x 3 x 64 x 64, int64 labels, the wnids in label order) of the ``train`` or ``test`` (val)
    split; every image decoded once (a bar where there are many)."""
    wnids = _wnids(root)
    files, labels = _train(root, wnids) if split == "train" else _val(root, {w: i for i, w in enumerate(wnids)})
    x = np.empty((len(files), 3, SIZE, SIZE), np.uint8)
    for i, path in enumerate(tqdm(files, desc=f"decoding Tiny-ImageNet {split}", leave=False, unit="img",
                                  disable=not progress or len(files) < 2000)):
        x[i] = _decode(path)
    return x, np.asarray(labels, np.int64), wnids


def _wnids(root: Path) -> list[str]:
    path = root / "wnids.txt"
    if not path.is_file():
        raise DataFormatError(f"{path} is missing: Tiny-ImageNet's directory holds wnids.txt, train/ and val/")
    wnids = sorted({line.strip() for line in path.read_text().splitlines() if line.strip()})
    if not wnids:
        raise DataFormatError(f"{path} lists no class ids")
    return wnids


def _train(root: Path, wnids: list[str]) -> tuple[list[Path], list[int]]:
    files: list[Path] = []
    labels: list[int] = []
    for i, wnid in enumerate(wnids):
        folder = root / "train" / wnid / "images"
        if not folder.is_dir():
            raise DataFormatError(f"{folder} is missing (wnids.txt lists {wnid})")
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in JPEG)
        if not images:
            raise DataFormatError(f"{folder} holds no JPEG images")
        files += images
        labels += [i] * len(images)
    return files, labels


def _val(root: Path, label: dict[str, int]) -> tuple[list[Path], list[int]]:
    notes = root / "val" / "val_annotations.txt"
    if not notes.is_file():
        raise DataFormatError(f"{notes} is missing: it labels the images of val/images/")
    files, labels = [], []
    for n, line in enumerate(notes.read_text().splitlines(), start=1):
        fields = line.split("\t")
        if not line.strip():
            continue
        if len(fields) < 2 or fields[1] not in label:
            raise DataFormatError(f"{notes}, line {n}: expected 'file<TAB>wnid<TAB>box' with a wnid of wnids.txt, "
                                  f"got {line[:80]!r}")
        path = root / "val" / "images" / fields[0]
        if not path.is_file():
            raise DataFormatError(f"{path} is missing ({notes}, line {n} labels it)")
        files.append(path)
        labels.append(label[fields[1]])
    if not files:
        raise DataFormatError(f"{notes} labels no image")
    return files, labels


def _decode(path: Path) -> np.ndarray:
    """One 64 x 64 image as uint8 3 x 64 x 64; a file that is not one names itself."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("Tiny-ImageNet needs Pillow: pip install 'rna-core[images]' (in a checkout: "
                          "'.[images]')") from None
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except (OSError, SyntaxError, ValueError) as e:
        raise DataFormatError(f"{path}: cannot decode the image ({e})") from None
    if im.size != (SIZE, SIZE):
        raise DataFormatError(f"{path}: {im.size[0]} x {im.size[1]} pixels, Tiny-ImageNet's are {SIZE} x {SIZE}")
    return np.asarray(im, np.uint8).transpose(2, 0, 1)
