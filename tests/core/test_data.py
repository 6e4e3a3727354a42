import gzip
import pickle

import numpy as np
import pytest

from rna_core.data import DataFormatError, batches, load_bundled, load_dataset, random_crop_flip


def _idx(arr: np.ndarray) -> bytes:
    head = bytes([0, 0, 8, arr.ndim]) + np.array(arr.shape, ">i4").tobytes()
    return head + arr.astype(np.uint8).tobytes()


@pytest.mark.parametrize("gz", [True, False])
def test_idx_directory(tmp_path, gz):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (7, 28, 28)), rng.integers(0, 10, 7)
    for name, arr in (("t10k-images-idx3-ubyte", x), ("t10k-labels-idx1-ubyte", y)):
        data = _idx(arr)
        (tmp_path / (name + (".gz" if gz else ""))).write_bytes(gzip.compress(data) if gz else data)
    ds = load_dataset("fashion_mnist", "test", tmp_path)
    assert ds.x.shape == (7, 1, 28, 28) and (ds.x[:, 0] == x).all() and (ds.y == y).all()


def test_idx_errors(tmp_path):
    with pytest.raises(DataFormatError, match="missing train-images-idx3-ubyte"):
        load_dataset("mnist", "train", tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x09\x03junk")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(np.zeros(2)))
    with pytest.raises(DataFormatError, match="bad magic"):
        load_dataset("mnist", "train", tmp_path)
    with pytest.raises(DataFormatError, match="does not exist"):
        load_dataset("cifar10", "train", tmp_path / "absent")
    with pytest.raises(ValueError, match="needs data_dir"):
        load_dataset("cifar10", "train")


def _cifar_images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def test_cifar10_python_and_binary(tmp_path):
    py, binary = tmp_path / "cifar-10-batches-py", tmp_path / "cifar-10-batches-bin"
    py.mkdir()
    binary.mkdir()
    data = {}
    for i, stem in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        x, y = _cifar_images(3, i), list(np.random.default_rng(i).integers(0, 10, 3))
        data[stem] = (x, y)
        with open(py / stem, "wb") as f:
            pickle.dump({b"batch_label": b"x", b"labels": y, b"data": x, b"filenames": [b"a"] * 3}, f, protocol=2)
        rec = np.concatenate([np.array(y, np.uint8)[:, None], x], axis=1)
        (binary / f"{stem}.bin").write_bytes(rec.tobytes())
    for root in (tmp_path, py, binary):
        if root is tmp_path:
            continue
        train = load_dataset("cifar10", "train", root)
        assert train.x.shape == (15, 3, 32, 32)
        assert (train.x[3].reshape(-1) == data["data_batch_2"][0][0]).all() and train.y[3] == data["data_batch_2"][1][0]
        test = load_dataset("cifar10", "test", root)
        assert (test.y == data["test_batch"][1]).all()
    assert len(load_dataset("cifar10", "train", tmp_path)) == 15  # finds the published sub-directory


def test_cifar100_python_and_binary(tmp_path):
    py, binary = tmp_path / "cifar-100-python", tmp_path / "cifar-100-binary"
    py.mkdir()
    binary.mkdir()
    for split in ("train", "test"):
        x = _cifar_images(4, 7)
        fine, coarse = [99, 0, 42, 7], [19, 0, 3, 1]
        with open(py / split, "wb") as f:
            pickle.dump({b"data": x, b"fine_labels": fine, b"coarse_labels": coarse}, f, protocol=2)
        rec = np.concatenate([np.array(coarse, np.uint8)[:, None], np.array(fine, np.uint8)[:, None], x], axis=1)
        (binary / f"{split}.bin").write_bytes(rec.tobytes())
    for root in (py, binary):
        ds = load_dataset("cifar100", "test", root)
        assert ds.num_classes == 100 and ds.y.tolist() == [99, 0, 42, 7]
        assert (ds.x[2].reshape(-1) == _cifar_images(4, 7)[2]).all()


def test_cifar_pickle_refuses_code(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    (d / "data_batch_1").write_bytes(pickle.dumps({"data": print}))
    with pytest.raises(DataFormatError, match="refusing to unpickle"):
        load_dataset("cifar10", "train", tmp_path)


def test_image_folder(tmp_path):
    image = pytest.importorskip("PIL.Image")
    for split in ("train", "val"):
        for c in ("cat", "dog"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(2):
                image.fromarray(np.full((40, 50, 3), 60 * i, np.uint8)).save(tmp_path / split / c / f"{i}.png")
    ds = load_dataset("imagefolder", "test", tmp_path, image_size=32)
    x, y = ds.batch(np.arange(4))
    assert x.shape == (4, 3, 32, 32) and y.tolist() == [0, 0, 1, 1] and ds.classes == ["cat", "dog"]
    with pytest.raises(DataFormatError, match=r"lacks train/ and val/"):
        load_dataset("imagefolder", "test", tmp_path / "val" / "cat")


def test_bundled_subset_is_stratified():
    train, test = load_bundled("train"), load_bundled("test")
    assert train.x.shape == (6000, 1, 28, 28) and test.x.shape == (1000, 1, 28, 28)
    assert (np.bincount(train.y) == 600).all() and (np.bincount(test.y) == 100).all()
    sub = train.subset(100)
    assert (np.bincount(sub.y, minlength=10) == 10).all()


def test_crop_flip_and_batches():
    x = np.arange(2 * 1 * 4 * 4, dtype=np.uint8).reshape(2, 1, 4, 4)
    same = random_crop_flip(x, np.random.default_rng(0), 0, False)
    assert (same == x).all()
    out = random_crop_flip(x, np.random.default_rng(0), 2, True)
    assert out.shape == x.shape
    again = random_crop_flip(x, np.random.default_rng(0), 2, True)
    assert (out == again).all()
    flipped = random_crop_flip(x, np.random.default_rng(5), 0, True)
    assert all((f == o).all() or (f == o[..., ::-1]).all() for f, o in zip(flipped, x, strict=True))
    ds = load_bundled("test")
    got = list(batches(ds, 300))
    assert [len(b[1]) for b in got] == [300, 300, 300, 100] and got[0][0].dtype == np.float32
    assert 0 <= got[0][0].min() and got[0][0].max() <= 1


def _image_folder(root, layout: dict[str, dict[str, int]]):
    image = pytest.importorskip("PIL.Image")
    for split, classes in layout.items():
        for c, n in classes.items():
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                image.fromarray(np.full((8, 8, 3), 30 * i, np.uint8)).save(root / split / c / f"{i}.png")


def test_image_folder_val_must_use_the_training_classes(tmp_path):
    _image_folder(tmp_path, {"train": {"cat": 1, "dog": 1, "eel": 1}, "val": {"cat": 1, "eel": 1}})
    with pytest.raises(DataFormatError, match=r"differ from the training split's \(missing \['dog'\]"):
        load_dataset("imagefolder", "test", tmp_path, image_size=8)


def test_image_folder_empty_class_and_truncated_image_are_named(tmp_path):
    _image_folder(tmp_path, {"train": {"cat": 1, "dog": 0}, "val": {"cat": 1, "dog": 1}})
    with pytest.raises(DataFormatError, match="dog: a class directory without images"):
        load_dataset("imagefolder", "train", tmp_path, image_size=8)
    bad = tmp_path / "val" / "dog" / "0.png"
    bad.write_bytes(bad.read_bytes()[:30])
    ds = load_dataset("imagefolder", "test", tmp_path, image_size=8)
    with pytest.raises(DataFormatError, match="0.png: cannot decode"):
        ds.batch(np.arange(2))


def test_truncated_gzip_and_idx_files_are_named(tmp_path):
    import gzip

    header = bytes([0, 0, 8, 3]) + np.array([2, 2, 2], ">i4").tobytes()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + bytes(8))[:-6])
    with pytest.raises(DataFormatError, match="train-images-idx3-ubyte.gz is not a complete gzip file"):
        load_dataset("mnist", "train", tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").unlink()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(header[:9])
    with pytest.raises(DataFormatError, match="truncated inside its IDX header"):
        load_dataset("mnist", "train", tmp_path)


def test_idx_labels_outside_the_classes_are_refused(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + np.array([2, 2, 2], ">i4").tobytes()
                                                      + bytes(8))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + np.array([2], ">i4").tobytes()
                                                      + bytes([3, 12]))
    with pytest.raises(DataFormatError, match=r"labels outside \[0, 10\) \(largest 12\)"):
        load_dataset("mnist", "test", tmp_path)


def test_prefetch_keeps_order_raises_where_it_failed_and_stops_early():
    import threading

    from rna_core.data.loader import prefetch

    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        yield 2
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for item in prefetch(failing()):
            got.append(item)
    assert got == [1, 2]
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    for item in prefetch(endless(), depth=2):
        if item == 3:
            break
    assert all(t.name != "rna-core-prefetch" for t in threading.enumerate())
    assert len(produced) <= 3 + 1 + 2 + 1  # consumed, the one in hand, the queue, one blocked put at most
    with pytest.raises(ValueError, match="depth"):
        next(prefetch([1], depth=0))
