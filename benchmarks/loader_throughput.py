"""Images/s the ImageNet input pipeline decodes and augments (RandomResizedCrop 224 + flip, ``rna_core.data.
pipeline``), per engine and worker count, against what a training step consumes: how many workers keep an
accelerator fed.

    python benchmarks/loader_throughput.py                       # every installed engine, 1..cores workers
    python benchmarks/loader_throughput.py --images 512 --consume 3000 --json out.json

The images are written first: JPEGs of ImageNet's typical size (500 x 375, quality 90, random smooth content) in a
temporary image folder. Engines: ``core`` (the core's threads), ``torch`` (DataLoader worker processes),
``mindspore`` (``mindspore.dataset``); each reads the images once in batches of ``--batch``, its workers' start
included. The consumption rates compared are ``--consume`` (images/s; repeatable) and the paper's ImageNet step
measured here: ``paper-imagenet-rna``'s ResNet-50 black-box PGD-2 step at 224 x 224 (torch, ``--step-batch``).
Printed: images/s, images/s per worker, and per consumption rate the ratio and the workers it needs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from rna_core.data import load_dataset
from rna_core.data.pipeline import ImageSamples, thread_loader


def write_images(root: Path, n: int, size: tuple[int, int] = (500, 375)) -> None:
    """``n`` JPEGs in two classes: low-frequency colour noise, so they compress like photographs."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / "train" / f"c{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (size[1] // 25, size[0] // 25, 3), dtype=np.uint8)
        Image.fromarray(small).resize(size, Image.BICUBIC).save(folder / f"{i}.jpg", quality=90)
    for c in ("c0", "c1"):
        (root / "val" / c).mkdir(parents=True, exist_ok=True)
        (root / "val" / c / "0.jpg").write_bytes((root / "train" / c / f"{int(c[1])}.jpg").read_bytes())


def engine(name: str):
    if name == "core":
        return thread_loader
    from rna_core.registry import get_backend

    return get_backend(name).loader


def rate(load, samples: ImageSamples, batch: int, workers: int) -> float:
    """Images/s of one pass over ``samples``, the workers' start included (once per epoch in training)."""
    start, n = time.perf_counter(), 0
    for x, _ in load(samples, np.arange(len(samples)), batch, workers):
        n += len(x)
    return n / (time.perf_counter() - start)


def cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def step_rate(batch: int) -> float:
    """Images/s of paper-imagenet-rna's training step (ResNet-50, BGN+GN, PGD-2) on this machine with torch."""
    from rna_core.backend import SGDConfig
    from rna_core.classifier import build_classifier
    from rna_core.methods import take_step
    from rna_core.recipes import get_recipe

    recipe = get_recipe("paper-imagenet-rna")
    clf = build_classifier({"name": "resnet50", "num_classes": 1000, "in_channels": 3}, recipe.norms, True,
                           "torch", np.random.default_rng(0))
    opt = clf.backend.make_optimizer(clf.model, SGDConfig(0.02))
    rng = np.random.default_rng(1)
    x = rng.random((batch, 3, 224, 224), dtype=np.float32)
    y = rng.integers(0, 1000, batch)
    take_step(clf, opt, recipe.method, x, y, recipe, rng, 0.02)
    start = time.perf_counter()
    for _ in range(2):
        take_step(clf, opt, recipe.method, x, y, recipe, rng, 0.02)
    return 2 * batch / (time.perf_counter() - start)


def main() -> None:
    cores = len(os.sched_getaffinity(0))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=512, help="JPEGs to read per measurement (default 512)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", default=",".join(str(w) for w in sorted({1, 2, cores, max(1, cores // 2)})))
    p.add_argument("--engines", default=",".join(e for e in ("core", "torch", "mindspore")
                                                   if e == "core" or importlib.util.find_spec(e)))
    p.add_argument("--consume", type=float, action="append", default=[], help="a step's images/s to compare")
    p.add_argument("--step-batch", type=int, default=16, help="batch of the measured ImageNet step (0: skip)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_images(Path(tmp), args.images)
        data = load_dataset("imagefolder", "train", tmp)
        samples = ImageSamples(data.files, data.y, 224, train=True, seed=0)
        rows = [{"engine": e, "workers": w, "images_per_s": rate(engine(e), samples, args.batch, w)}
                for e in args.engines.split(",") for w in map(int, args.workers.split(","))]
    consume = {f"--consume {c:g}": c for c in args.consume}
    if args.step_batch:
        consume["paper-imagenet-rna step here (torch)"] = step_rate(args.step_batch)
    print(f"{cores}-core {cpu()}, {args.images} JPEGs of 500 x 375 -> "
          "RandomResizedCrop 224 + flip")
    print("| engine | workers | images/s | per worker |" + "".join(f" / {k} |" for k in consume))
    print("|---|---|---|---|" + "---|" * len(consume))
    for r in rows:
        ratios = "".join(f" {r['images_per_s'] / c:.2f} |" for c in consume.values())
        print(f"| {r['engine']} | {r['workers']} | {r['images_per_s']:.0f} | {r['images_per_s'] / r['workers']:.0f} |"
              + ratios)
    best = max(r["images_per_s"] / r["workers"] for r in rows)
    for name, c in consume.items():
        print(f"{name}: {c:.1f} images/s needs {math.ceil(c / best)} workers at the best rate per worker here "
              f"({best:.0f} images/s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "consume": consume}, indent=1))


if __name__ == "__main__":
    main()
