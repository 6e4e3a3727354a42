"""Tiny-ImageNet read from its published layout (wnids.txt, train/<wnid>/images, val/images with
val_annotations.txt): labels in sorted wnid order on both splits, grayscale images converted, and every broken
part of the tree named; the APART recipes of Table 2."""

from __future__ import annotations

import numpy as np
import pytest

from rna_core.data import DataFormatError, load_dataset
from rna_core.recipes import RECIPES

Image = pytest.importorskip("PIL.Image")
WNIDS = ["n02", "n01", "n03"]  # the file's order; classes are numbered n01, n02, n03


def _image(path, value: int, mode: str = "RGB", size: int = 64) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (size, size), value if mode == "L" else (value, value // 2, 255 - value)).save(path, "JPEG",
                                                                                                    quality=95)


def _tree(root, val_lines=None):
    (root / "wnids.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    for k, wnid in enumerate(WNIDS):
        for j in range(2):
            _image(root / "train" / wnid / "images" / f"{wnid}_{j}.JPEG", 40 * k + 10 * j, "L" if j else "RGB")
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    for i in range(3):
        _image(root / "val" / "images" / f"val_{i}.JPEG", 30 * i)
    lines = val_lines or [f"val_{i}.JPEG\t{w}\t0\t0\t63\t63" for i, w in enumerate(["n03", "n01", "n02"])]
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


def test_both_splits_in_the_published_layout(tmp_path):
    root = _tree(tmp_path / "tiny-imagenet-200")
    train = load_dataset("tiny_imagenet", "train", root)
    test = load_dataset("tiny_imagenet", "test", root)
    assert train.x.shape == (6, 3, 64, 64) and train.x.dtype == np.uint8 and train.num_classes == 3
    assert train.y.tolist() == [0, 0, 1, 1, 2, 2]  # n01, n01, n02, n02, n03, n03
    assert test.y.tolist() == [2, 0, 1] and test.shape == (3, 64, 64)
    gray = train.x[1]
    assert (gray[0] == gray[1]).all() and (gray[1] == gray[2]).all()  # a grayscale JPEG comes out as RGB


def test_a_broken_tree_is_named(tmp_path):
    root = _tree(tmp_path / "a")
    (root / "train" / "n03" / "images" / "n03_1.JPEG").write_bytes(b"\xff\xd8not a jpeg")
    with pytest.raises(DataFormatError, match="n03_1.JPEG: cannot decode"):
        load_dataset("tiny_imagenet", "train", root)
    root = _tree(tmp_path / "b", ["val_0.JPEG\tn09\t0\t0\t63\t63"])
    with pytest.raises(DataFormatError, match="val_annotations.txt, line 1: .*wnid of wnids.txt"):
        load_dataset("tiny_imagenet", "test", root)
    root = _tree(tmp_path / "c")
    (root / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DataFormatError, match="val_annotations.txt is missing"):
        load_dataset("tiny_imagenet", "test", root)
    root = _tree(tmp_path / "d")
    _image(root / "train" / "n01" / "images" / "n01_0.JPEG", 5, size=32)
    with pytest.raises(DataFormatError, match="n01_0.JPEG: 32 x 32 pixels"):
        load_dataset("tiny_imagenet", "train", root)
    with pytest.raises(DataFormatError, match="wnids.txt is missing"):
        load_dataset("tiny_imagenet", "train", tmp_path)


def test_apart_table2_recipes_carry_the_papers_settings():
    tiny = RECIPES["paper-tinyimagenet-preact-apart"]
    assert (tiny.dataset, tiny.arch, tiny.batch_size, tiny.epochs, tiny.milestones) == (
        "tiny_imagenet", "preact_resnet18", 256, 200, (0.5, 0.75))
    assert RECIPES["paper-tinyimagenet-preact-standard-2x"].epochs == 400
    r18 = RECIPES["paper-imagenet-r18-standard"]
    assert (r18.arch, r18.batch_size, r18.epochs, r18.weight_decay) == ("resnet18_imagenet", 256, 105, 1e-4)
    assert [round(m * r18.epochs) for m in r18.milestones] == [30, 60, 90, 100]
    assert [RECIPES[f"paper-imagenet-r18-{b}"].epochs for b in ("standard-4x", "apart-4x")] == [420, 210]
    assert {RECIPES[f"paper-imagenet-r18-{m}"].method for m in ("sam", "apart", "apart-sam")} == {
        "sam", "apart", "apart-sam"}
