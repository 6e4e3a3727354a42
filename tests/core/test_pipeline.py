"""The ImageNet input pipeline's work, written once: RandomResizedCrop's box (torchvision's algorithm), crops that
depend on (seed, epoch, image) only, evaluation's resize + center crop, each rank's shard of every global batch, the
core's thread engine, and a corrupt file named."""

from __future__ import annotations

import numpy as np
import pytest

from rna_core.data import DataFormatError, load_dataset
from rna_core.data.pipeline import RATIO, SCALE, ImageSamples, crop_box, rank_indices, thread_loader
from rna_core.distributed import World

Image = pytest.importorskip("PIL.Image")


def image_folder(root, sizes=((40, 30), (50, 64), (33, 33)), per_class: int = 4):
    """train/ and val/ with two classes of JPEGs of several sizes."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("cat", "dog"):
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                w, h = sizes[i % len(sizes)]
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / split / c / f"{i}.jpg")
    return root


@pytest.mark.parametrize("size", [(500, 375), (64, 64), (30, 300)])
def test_crop_box_is_random_resized_crop(size):
    rng = np.random.default_rng(0)
    for _ in range(200):
        left, top, w, h = crop_box(rng, *size)
        assert 0 <= left and left + w <= size[0] and 0 <= top and top + h <= size[1] and w > 0 and h > 0
        tried = SCALE[0] * 0.9 <= w * h / (size[0] * size[1]) <= SCALE[1] * 1.1
        assert tried or (w, h) in ((size[0], round(size[0] / RATIO[0])), (round(size[1] * RATIO[1]), size[1]))


def test_crops_depend_on_seed_epoch_and_image_only(tmp_path):
    data = load_dataset("imagefolder", "train", image_folder(tmp_path), image_size=24)
    a = ImageSamples(data.files, data.y, 24, train=True, seed=3, epoch=1)
    b = ImageSamples(data.files, data.y, 24, train=True, seed=3, epoch=1)
    x = [a[i][0] for i in (5, 2, 7)]
    assert all(np.array_equal(u, b[i][0]) for u, i in zip(x, (5, 2, 7), strict=True))
    assert x[0].shape == (3, 24, 24) and x[0].dtype == np.uint8 and a[5][1] == data.y[5]
    other = ImageSamples(data.files, data.y, 24, train=True, seed=3, epoch=2)
    assert not np.array_equal(other[5][0], x[0])
    center = ImageSamples(data.files, data.y, 24, train=False)
    assert np.array_equal(center[5][0], data.batch(np.array([5]))[0][0])  # evaluation: resize 8/7, center crop


def test_ranks_read_disjoint_shards_of_every_global_batch():
    order = np.random.default_rng(0).permutation(70)
    shards = [rank_indices(order, 16, r, 4) for r in range(4)]
    assert all(len(s) == 4 * 4 for s in shards)  # 4 full batches of 16, 4 per rank each
    assert sorted(np.concatenate(shards)) == sorted(order[:64])
    world = World(1, 4)
    assert np.array_equal(shards[1][:4], world.shard(order[:16], order[:16])[0])  # the in-memory path's shard
    assert np.array_equal(rank_indices(order, 16, 1, 4, start=2), shards[1][8:])
    with pytest.raises(ValueError, match="does not split over 3 ranks"):
        rank_indices(order, 16, 0, 3)


def test_the_thread_engine_gives_the_samples_in_order_and_names_a_bad_file(tmp_path):
    data = load_dataset("imagefolder", "train", image_folder(tmp_path), image_size=16)
    samples = ImageSamples(data.files, data.y, 16, seed=1)
    idx = np.array([6, 1, 3, 0, 7])
    batches = list(thread_loader(samples, idx, 2, workers=3))
    assert len(batches) == 2 and batches[1][1].tolist() == [data.y[3], data.y[0]]
    assert np.array_equal(batches[0][0][1], samples[1][0])
    data.files[3].write_bytes(b"not a jpeg")
    with pytest.raises(DataFormatError, match=f"{data.files[3].name}: cannot decode"):
        list(thread_loader(samples, idx, 2, workers=2))
