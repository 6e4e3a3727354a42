"""Datasets as uint8 NCHW arrays (or lazily decoded image folders), and the registry of named data sets."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .formats import DataFormatError, list_image_folder, load_cifar, load_idx_dir, read_image
from .tiny_imagenet import load_tiny_imagenet

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FMNIST_MEAN, FMNIST_STD = (0.2860,), (0.3530,)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
BUNDLED_FILE = "fashion_mnist_subset.npz"


@dataclass
class ArrayDataset:
    """Images ``x`` (uint8, N x C x H x W) with labels ``y`` (int64, N)."""

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str = "arrays"

    def __post_init__(self) -> None:
        if self.x.dtype != np.uint8 or self.x.ndim != 4:
            raise DataFormatError(f"{self.name}: images must be uint8 N x C x H x W, got {self.x.dtype} {self.x.shape}")
        if self.y.shape != (len(self.x),):
            raise DataFormatError(f"{self.name}: {len(self.x)} images but labels of shape {self.y.shape}")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])

    def batch(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.x[idx], self.y[idx]

    def subset(self, n: int | None, rng: np.random.Generator | None = None) -> ArrayDataset:
        """The first ``n`` examples of a stratified shuffle (all of them if ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        idx = stratified_order(self.y, rng or np.random.default_rng(0))[:n]
        return ArrayDataset(self.x[idx], self.y[idx], self.num_classes, self.mean, self.std, self.name)


@dataclass
class ImageFolderDataset:
    """``root/<class>/<image>`` decoded on demand at ``size`` x ``size``."""

    root: Path
    size: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    classes: list[str] | None = None  # the training split's classes: this folder must hold the same

    def __post_init__(self) -> None:
        self.files, self.y, self.classes = list_image_folder(Path(self.root), self.classes)
        self.num_classes = len(self.classes)
        self.name = f"imagefolder:{self.root}"

    def __len__(self) -> int:
        return len(self.y)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (3, self.size, self.size)

    def batch(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.stack([read_image(self.files[i], self.size) for i in idx]), self.y[idx]

    def subset(self, n: int | None, rng: np.random.Generator | None = None) -> ImageFolderDataset:
        if n is None or n >= len(self):
            return self
        idx = stratified_order(self.y, rng or np.random.default_rng(0))[:n]
        out = ImageFolderDataset.__new__(ImageFolderDataset)
        out.__dict__.update(self.__dict__, files=[self.files[i] for i in idx], y=self.y[idx])
        return out


def stratified_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation whose every prefix is as class-balanced as possible (round-robin over shuffled classes)."""
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    rank = np.empty(len(y))
    for members in per_class:
        rank[members] = np.arange(len(members)) + rng.uniform(0, 0.5, len(members))
    return np.argsort(rank, kind="stable")


def load_bundled(split: str) -> ArrayDataset:
    """The stratified Fashion-MNIST subset shipped with the package (MIT licence, see LICENSE-fashion-mnist)."""
    with resources.files("rna_core.data").joinpath(BUNDLED_FILE).open("rb") as f, np.load(f, allow_pickle=False) as z:
        x, y = z[f"x_{split}"], z[f"y_{split}"]
    return ArrayDataset(x, y.astype(np.int64), 10, FMNIST_MEAN, FMNIST_STD, f"bundled-fashion-mnist/{split}")


DATASETS = ("bundled", "fashion_mnist", "mnist", "cifar10", "cifar100", "tiny_imagenet", "imagefolder")


def load_dataset(name: str, split: str, data_dir: str | Path | None = None, image_size: int | None = None):
    """A named data set of ``DATASETS``. Every name but ``bundled`` reads the user's ``data_dir`` in the published
    format (``tiny_imagenet``: ``rna_core.data.tiny_imagenet``, its val split as the test split); for
    ``imagefolder`` (ImageNet layout) ``data_dir`` holds ``train/`` and ``val/``, its images resized to
    ``image_size`` (None: 224). The other data sets have their own size: an ``image_size`` of another size is an
    error, not a silent skip."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if name == "imagefolder":
        return _image_folder(split, data_dir, image_size or 224)
    data = load_bundled(split) if name == "bundled" else _arrays(name, split, data_dir)
    if image_size is not None and data.shape[1:] != (image_size, image_size):
        raise ValueError(f"image_size={image_size} cannot be honoured: {name} images are "
                         f"{data.shape[1]} x {data.shape[2]} (image_size resizes image folders only; leave it unset)")
    return data


def _arrays(name: str, split: str, data_dir: str | Path | None):
    if data_dir is None:
        raise ValueError(f"data set {name!r} needs data_dir (the directory holding its published files)")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataFormatError(f"data_dir {root} does not exist (data set {name!r})")
    if name == "tiny_imagenet":
        x, y, wnids = load_tiny_imagenet(root, split)
        return ArrayDataset(x, y, len(wnids), IMAGENET_MEAN, IMAGENET_STD, f"{name}/{split}")
    if name in ("fashion_mnist", "mnist"):
        x, y = load_idx_dir(root, split)
        mean, std = (FMNIST_MEAN, FMNIST_STD) if name == "fashion_mnist" else (MNIST_MEAN, MNIST_STD)
        return ArrayDataset(x, y, 10, mean, std, f"{name}/{split}")
    k = 10 if name == "cifar10" else 100
    x, y = load_cifar(root, split, k)
    return ArrayDataset(x, y, k, CIFAR_MEAN, CIFAR_STD, f"{name}/{split}")


def _image_folder(split: str, data_dir: str | Path | None, image_size: int):
    if data_dir is None:
        raise ValueError("data set 'imagefolder' needs data_dir (the directory holding train/ and val/)")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataFormatError(f"data_dir {root} does not exist (data set 'imagefolder')")
    missing = [s for s in ("train", "val") if not (root / s).is_dir()]
    if missing:
        raise DataFormatError(f"image folder {root} lacks {' and '.join(f'{s}/' for s in missing)} (expected "
                              "train/<class>/<image> and val/<class>/<image>)")
    if split == "train":
        return ImageFolderDataset(root / "train", image_size)
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    return ImageFolderDataset(root / "val", image_size, classes=classes)
