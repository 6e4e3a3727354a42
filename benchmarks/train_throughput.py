"""Images/s of black-box RNA (and Madry BN) PGD-10 adversarial training at CIFAR shape, against the authors' loop.

    python benchmarks/train_throughput.py                      # CUDA if present, else a small CPU run
    python benchmarks/train_throughput.py --batch 128 --batch 512 --steps 20 --json out.json

Variants, each timed over ``--steps`` training steps after ``--warmup`` steps (compilation happens there and is
reported apart):
  (a) authors: a re-implementation of the published RNA training loop, written from the paper's Algorithm 1
      and its released training script's structure: float32, eager, the path set on every norm module from the
      host before the attack and again before the update, PGD-10 in train mode whose backward also fills every
      parameter's gradient, ``.item()`` reads of loss and accuracy after every step, pageable host-to-device
      copies. Its IN candidate is torch's InstanceNorm2d without affine, as in that script.
  (b) rna-core fp32, (c) bf16, (d) bf16 + channels_last, (e) bf16 + channels_last + torch.compile,
  (f) the same compiled with CUDA graphs (``compile_mode="reduce-overhead"``; CUDA only).
The same for a BN model (Madry PGD-10 training: the authors' loop without path draws). Prints images/s, the
ratio to (a), the step time ratio RNA / BN per variant, the 200-epoch time of CIFAR-10 (50,000 images) at that
rate, and PGD-20 evaluation throughput (fp32 and the fastest variant) extrapolated to 10,000 images.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rna_core import pgd
from rna_core.attacks import attack
from rna_core.backend import SGDConfig, Speed
from rna_core.classifier import build_classifier
from rna_core.methods import take_step
from rna_core.recipes import get_recipe

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)


class AuthorsNorm(nn.Module):
    """A norm module holding its candidates in a list; the training loop sets ``choice`` from the host."""

    def __init__(self, channels: int, kinds: tuple[str, ...]) -> None:
        super().__init__()
        self.kinds = kinds
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels) if k == "bn" else nn.InstanceNorm2d(channels)
                                   for k in kinds)
        self.choice = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norms[self.choice](x)


class AuthorsBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, kinds: tuple[str, ...]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = AuthorsNorm(cout, kinds)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = AuthorsNorm(cout, kinds)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), AuthorsNorm(cout, kinds))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class AuthorsResNet18(nn.Module):
    def __init__(self, kinds: tuple[str, ...], width: int = 64, num_classes: int = 10) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = AuthorsNorm(width, kinds)
        layers, cin = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            cout = width * 2**i
            layers += [AuthorsBlock(cin, cout, stride, kinds), AuthorsBlock(cout, cout, 1, kinds)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1((x - self.mean) / self.std)))
        out = self.layers(out)
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def authors_step(model: AuthorsResNet18, opt, x: np.ndarray, y: np.ndarray, device: torch.device,
                 rng: np.random.Generator, steps: int = 10, eps: float = 8 / 255, alpha: float = 2 / 255) -> None:
    """One step of the published loop: random path, PGD in train mode, another random path, update."""
    norms = [m for m in model.modules() if isinstance(m, AuthorsNorm)]

    def set_random_path() -> None:
        for m in norms:
            m.choice = int(rng.integers(len(m.kinds)))

    model.train()
    set_random_path()
    X, Y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    delta = torch.empty_like(X).uniform_(-eps, eps)
    delta = (torch.clamp(X + delta, 0, 1) - X).requires_grad_(True)
    for _ in range(steps):
        loss = F.cross_entropy(model(X + delta), Y)
        loss.backward()  # as the released script: parameter gradients are filled too
        delta.data = torch.clamp(delta + alpha * delta.grad.sign(), -eps, eps)
        delta.data = torch.clamp(X + delta, 0, 1) - X
        delta.grad.zero_()
    set_random_path()
    output = model(X + delta.detach())
    loss = F.cross_entropy(output, Y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    loss.item(), (output.max(1)[1] == Y).sum().item()  # the script's per-step metric reads


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(step: Callable[[int], object], steps: int, warmup: int, device: torch.device) -> tuple[float, float]:
    """(seconds of the warm-up steps, median-free mean seconds per step over ``steps`` steps)."""
    sync(device)
    t0 = time.perf_counter()
    for i in range(warmup):
        step(i)
    sync(device)
    t1 = time.perf_counter()
    for i in range(steps):
        out = step(warmup + i)
    if out is not None and hasattr(out, "loss"):
        float(out.loss)  # the last step's result, read once: the device has finished
    sync(device)
    return t1 - t0, (time.perf_counter() - t1) / steps


def rna_variant(norms: str, precision: str, channels_last: bool, compile: bool, mode: str, args, device, batches):
    arch = {"name": "resnet18", "num_classes": 10, "in_channels": 3, "width": args.width, "mean": list(MEAN),
            "std": list(STD)}
    clf = build_classifier(arch, norms, True, "torch", np.random.default_rng(0), 0)
    clf.backend.device = device
    clf.backend.ops.device = device
    clf.model.to(device)
    speed = {}
    if (precision, channels_last, compile) != ("fp32", False, False):  # (b) runs without prepare
        clf.backend.prepare(clf.model, Speed(precision, channels_last, compile, mode))
        speed = {"precision": precision, "compile": compile, "compile_mode": mode}
    recipe = get_recipe("paper-cifar10-rna", norms=norms, method="blackbox" if norms != "bn" else "madry",
                        batch_size=len(batches[0][0]), **speed)
    opt = clf.backend.make_optimizer(clf.model, SGDConfig(0.01))
    rng = np.random.default_rng(1)
    return clf, (lambda i: take_step(clf, opt, recipe.method, *batches[i % len(batches)], recipe, rng, 0.01))


def authors_variant(norms: str, args, device, batches):
    kinds = tuple(norms.split("+"))
    torch.manual_seed(0)
    model = AuthorsResNet18(kinds, args.width).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(1)
    return lambda i: authors_step(model, opt, *batches[i % len(batches)], device, rng)


def eval_throughput(clf, device, x: np.ndarray, y: np.ndarray, images: int) -> float:
    """Seconds for PGD-20 (eps 8/255, alpha 2/255, one held draw per batch) plus one fresh-draw answer on
    ``images`` images, extrapolated from the batches given."""
    be = clf.backend
    clf.model.set_train(False)
    rng = np.random.default_rng(2)
    spec = pgd(20, 8 / 255, 2 / 255)

    def one(i: int):
        with clf.controller.frozen():
            adv = attack(be, clf.model, be.ops.tensor(x), be.ops.tensor(y), spec, rng)
        return be.logits(clf.model, adv, clf.controller.next_draw()).argmax(1)

    one(0)  # compile / warm up
    sync(device)
    t = time.perf_counter()
    reps = max(1, min(images // len(x), 20))
    for i in range(reps):
        one(i)
    sync(device)
    return (time.perf_counter() - t) / reps * images / len(x)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cuda = torch.cuda.is_available()
    p.add_argument("--batch", type=int, action="append", help="batch sizes (default: 128 and 512 on CUDA, 32 on CPU)")
    p.add_argument("--width", type=int, default=64 if cuda else 16)
    p.add_argument("--steps", type=int, default=20 if cuda else 3)
    p.add_argument("--warmup", type=int, default=3 if cuda else 1)
    p.add_argument("--variants", default="a,b,c,d,e,f" if cuda else "a,b,c,d,e",
                   help="comma-separated subset of a,b,c,d,e,f")
    p.add_argument("--models", default="bn+in,bn", help="RNA space(s); 'bn' is the BN model (Madry training)")
    p.add_argument("--eval-images", type=int, default=10000 if cuda else 64)
    p.add_argument("--eval-batch", type=int, default=500 if cuda else 32)
    p.add_argument("--device", default="cuda" if cuda else "cpu")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    variants = {"a": ("authors' loop", None), "b": ("rna-core fp32", ("fp32", False, False, "default")),
                "c": ("bf16", ("bf16", False, False, "default")),
                "d": ("bf16 + channels_last", ("bf16", True, False, "default")),
                "e": ("bf16 + channels_last + compile", ("bf16", True, True, "default")),
                "f": ("bf16 + channels_last + CUDA graphs", ("bf16", True, True, "reduce-overhead"))}
    chosen = [v for v in args.variants.split(",") if v]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    print(f"device: {name}; torch {torch.__version__}; ResNet-18 width {args.width}, 32 x 32, PGD-10 training")
    results: dict = {"device": name, "torch": torch.__version__, "width": args.width, "rows": [], "eval": []}
    data_rng = np.random.default_rng(0)
    sizes = args.batch or ([128, 512] if cuda else [32])
    for batch in sizes:
        batches = [(data_rng.random((batch, 3, 32, 32), dtype=np.float32), data_rng.integers(0, 10, batch))
                   for _ in range(4)]
        for norms in args.models.split(","):
            base = None
            for v in chosen:
                label, opts = variants[v]
                try:
                    if opts is None:
                        fn, clf = authors_variant(norms, args, device, batches), None
                    else:
                        clf, fn = rna_variant(norms, *opts, args, device, batches)
                    warm, per_step = timed(fn, args.steps, args.warmup, device)
                except Exception as e:  # a variant this machine cannot run is reported, not fatal
                    print(f"batch {batch:4d} {norms:6s} ({v}) {label:32s} failed: {type(e).__name__}: "
                          f"{str(e)[:300]}", flush=True)
                    results["rows"].append({"batch": batch, "model": norms, "variant": v, "error": str(e)[:1000]})
                    continue
                ips = batch / per_step
                base = base or (ips if v == "a" else None)
                row = {"batch": batch, "model": norms, "variant": v, "label": label, "images_per_s": ips,
                       "ms_per_step": per_step * 1e3, "warmup_s": warm, "vs_authors": ips / base if base else None,
                       "epochs200_min": 200 * 50000 / ips / 60}
                results["rows"].append(row)
                ratio = f"{row['vs_authors']:.2f}x" if base else "-"
                print(f"batch {batch:4d} {norms:6s} ({v}) {label:32s} {ips:9.1f} img/s {ratio:>7s} "
                      f"200 epochs {row['epochs200_min']:8.1f} min (warm-up {warm:.1f} s)", flush=True)
                if clf is not None and batch == sizes[0] and v in ("b", chosen[-1]):
                    n = min(args.eval_batch, len(batches[0][0]) * 4)
                    xe = np.concatenate([b[0] for b in batches])[:n]
                    ye = np.concatenate([b[1] for b in batches])[:n]
                    sec = eval_throughput(clf, device, xe, ye, args.eval_images)
                    results["eval"].append({"model": norms, "variant": v, "seconds_10k": sec * 10000 / args.eval_images,
                                            "images": args.eval_images})
                    print(f"    PGD-20 evaluation ({label}): {sec:.1f} s for {args.eval_images} images "
                          f"({sec * 10000 / args.eval_images / 60:.2f} min per 10,000)", flush=True)
                if args.json:
                    with open(args.json, "w") as f:
                        json.dump(results, f, indent=1)
    rows = results["rows"]
    print("RNA step / BN step per variant and batch:")
    for r in rows:
        if r["model"] != "bn" and "error" not in r:
            bn = [b for b in rows if b["model"] == "bn" and b["batch"] == r["batch"] and b["variant"] == r["variant"]
                  and "error" not in b]
            if bn:
                print(f"  batch {r['batch']} ({r['variant']}) {r['ms_per_step'] / bn[0]['ms_per_step']:.2f}")


if __name__ == "__main__":
    main()
