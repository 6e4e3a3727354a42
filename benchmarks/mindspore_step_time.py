"""MindSpore training-step and PGD time of the library's networks against a plain MindSpore ResNet-18 (the floor)
and against torch, as ratios, with compile time and the number of graphs compiled.

    python benchmarks/mindspore_step_time.py [--mode graph] [--norms bn+in] [--width 8] [--batch 128] [--size 28]

Variants, run interleaved in one process on the same input (one step of each per round, so drift in the
machine's load hits all alike):
- ``plain``: a hand-written ResNet-18 (CIFAR stem, ``nn.BatchNorm2d``, momentum 0.9 = torch's 0.1), one compiled
  ``value_and_grad`` + ``nn.SGD`` step, the fastest this shape runs on MindSpore here (the floor);
- ``lib <norms>``: ``rna_core`` ResNet-18 on the MindSpore backend, a fresh path per step (``train_step``);
- ``lib bn``: the same with plain BN (RNA / BN ratio);
- ``torch <norms>``: the torch backend's step.
Steps are clean SGD steps (lr 0.01, momentum 0.9, weight decay 5e-4). PGD-10 (L-inf 8/255, eval mode) runs the
core's attack loop on each model (the plain model through a one-draw Oracle), so the loop is the same and only the
model differs. The first call of each MindSpore program is its compile time (plus one run); ``graphs`` counts the
graphs MindSpore compiled after that first call (0: every later path, step and batch reuses the graph).
Prints median milliseconds and ratios; ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops
from mindspore.graph import api as ms_api

from rna_core import attacks as A
from rna_core.attacks import CE_MEAN, Oracle
from rna_core.backend import SGDConfig
from rna_core.backends.mindspore.ops import OPS
from rna_core.classifier import build_classifier
from rna_core.methods import Step
from rna_core.registry import get_backend


def conv(cin: int, cout: int, k: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, pad_mode="pad", padding=k // 2, has_bias=False)


class Block(nn.Cell):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv(cin, cout, 3, stride), nn.BatchNorm2d(cout, momentum=0.9)
        self.conv2, self.bn2 = conv(cout, cout, 3, 1), nn.BatchNorm2d(cout, momentum=0.9)
        self.down = stride != 1 or cin != cout
        if self.down:
            self.short = nn.SequentialCell(conv(cin, cout, 1, stride), nn.BatchNorm2d(cout, momentum=0.9))

    def construct(self, x):
        y = self.bn2(self.conv2(ops.relu(self.bn1(self.conv1(x)))))
        return ops.relu(y + (self.short(x) if self.down else x))


class PlainResNet18(nn.Cell):
    """ResNet-18 with the CIFAR stem, as the library's graph, written directly in MindSpore."""

    def __init__(self, channels: int, width: int, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.SequentialCell(conv(channels, width, 3, 1), nn.BatchNorm2d(width, momentum=0.9), nn.ReLU())
        blocks, cin = [], width
        for mult, stride in zip((1, 2, 4, 8), (1, 2, 2, 2), strict=True):
            blocks += [Block(cin, width * mult, stride), Block(width * mult, width * mult, 1)]
            cin = width * mult
        self.blocks = nn.SequentialCell(blocks)
        self.fc = nn.Dense(cin, classes)

    def construct(self, x):
        return self.fc(self.blocks(self.stem(x)).mean(axis=(2, 3)))


class PlainOracle:
    """The plain model as the attacks see it (``rna_core.attacks.Oracle``'s members): one deterministic draw;
    PGD's loss program as the library's (per-example CE, its batch mean differentiated, loss and logits returned),
    compiled once."""

    def __init__(self, net: nn.Cell, graph_mode: bool) -> None:
        self.net, self.ops, self.num_classes = net, OPS, 10

        def loss(x, y):
            logits = net(x)
            per = ops.cross_entropy(logits, y, reduction="none")
            return per.mean(), per, logits

        grad = ms.value_and_grad(loss, 0, None, has_aux=True)
        self.grad = ms.jit(grad) if graph_mode else grad

    def draw(self) -> None:
        return None

    def loss_grad(self, loss, x, y, w, draw):
        if loss != CE_MEAN:
            raise ValueError("the plain benchmark model serves PGD's mean CE only")
        (_, per, logits), grad = self.grad(x, y)
        return per, logits, grad

    def logits(self, x, draw):
        return self.net(x)


def compiled() -> int:
    return len(ms_api.ms_compile_cache)


def plain_variant(args, graph_mode: bool):
    net = PlainResNet18(args.channels, args.width)
    opt = nn.SGD(net.trainable_params(), 0.01, momentum=0.9, weight_decay=5e-4)

    def loss(x, y):
        return ops.cross_entropy(net(x), y)

    grad_fn = ms.value_and_grad(loss, None, opt.parameters)

    def step(x, y):
        loss, grads = grad_fn(x, y)
        opt(grads)
        return loss

    step = ms.jit(step) if graph_mode else step
    return {"step": lambda x, y: step(x, y).asnumpy(), "net": net, "oracle": PlainOracle(net, graph_mode)}


def lib_variant(backend, norms: str, args):
    clf = build_classifier({"name": "resnet18", "num_classes": 10, "in_channels": args.channels,
                            "width": args.width}, norms, True, backend, np.random.default_rng(0), 0)
    opt = backend.make_optimizer(clf.model, SGDConfig(0.01, 0.9, 5e-4))
    step = Step(clf, opt, None, None, 0.01)
    return {"step": lambda x, y: step.descend(CE_MEAN, x, y), "net": clf.model, "oracle": Oracle(backend, clf.model),
            "backend": backend}


def set_train(v: dict, training: bool) -> None:
    v["net"].set_train(training)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", default="graph", choices=("graph", "pynative"))
    p.add_argument("--norms", default="bn+in")
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--pgd-rounds", type=int, default=3)
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    graph_mode = args.mode == "graph"
    ms_backend = get_backend("mindspore", mode=args.mode)
    ms.set_seed(0)
    variants = {"plain": plain_variant(args, graph_mode),
                f"lib {args.norms}": lib_variant(ms_backend, args.norms, args),
                "lib bn": lib_variant(ms_backend, "bn", args)}
    if not args.no_torch:
        variants[f"torch {args.norms}"] = lib_variant(get_backend("torch"), args.norms, args)
    rng = np.random.default_rng(1)
    x_np = rng.random((args.batch, args.channels, args.size, args.size), dtype=np.float32)
    y_np = rng.integers(0, 10, args.batch)
    data = {name: ((v["backend"].ops.tensor(x_np), v["backend"].ops.tensor(y_np)) if "backend" in v
                   else (Tensor(x_np), Tensor(y_np.astype(np.int32)))) for name, v in variants.items()}
    first, graphs = {}, {name: 0 for name in variants}
    steps: dict[str, list[float]] = {name: [] for name in variants}
    for name, v in variants.items():
        set_train(v, True)
        t = time.perf_counter()
        v["step"](*data[name])
        first[name] = time.perf_counter() - t
    for _ in range(args.steps):
        for name, v in variants.items():
            before, t = compiled(), time.perf_counter()
            v["step"](*data[name])
            steps[name].append(time.perf_counter() - t)
            graphs[name] += compiled() - before
    spec = A.pgd(10)
    pgd: dict[str, list[float]] = {name: [] for name in variants}
    pgd_first: dict[str, float] = {}
    for r in range(args.pgd_rounds + 1):
        for name, v in variants.items():
            set_train(v, False)
            x, y = data[name]
            before, t = compiled(), time.perf_counter()
            adv = A.run(v["oracle"], x, y, spec, np.random.default_rng(r))
            adv.asnumpy() if hasattr(adv, "asnumpy") else adv.cpu()
            seconds = time.perf_counter() - t
            if r:
                pgd[name].append(seconds)
                graphs[name] += compiled() - before
            else:
                pgd_first[name] = seconds
    med = {name: 1000 * statistics.median(s) for name, s in steps.items()}
    med_pgd = {name: 1000 * statistics.median(s) for name, s in pgd.items()}
    print(f"MindSpore {ms.__version__} {args.mode}, ResNet-18 width {args.width}, batch {args.batch} x "
          f"{args.channels} x {args.size} x {args.size}; medians of {args.steps} steps / {args.pgd_rounds} PGD-10 runs")
    print(f"  {'variant':18s} {'step ms':>9s} {'/plain':>7s} {'PGD-10 ms':>10s} {'/plain':>7s} "
          f"{'first step s':>13s} {'first PGD s':>12s} {'graphs after':>13s}")
    for name in variants:
        print(f"  {name:18s} {med[name]:9.1f} {med[name] / med['plain']:7.2f} {med_pgd[name]:10.1f} "
              f"{med_pgd[name] / med_pgd['plain']:7.2f} {first[name]:13.2f} {pgd_first[name]:12.2f} "
              f"{graphs[name]:13d}")
    lib = f"lib {args.norms}"
    print(f"  RNA / BN step: {med[lib] / med['lib bn']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "step_ms": med, "pgd_ms": med_pgd, "first_step_s": first,
                       "first_pgd_s": pgd_first, "graphs_after_first": graphs}, f, indent=1)


if __name__ == "__main__":
    main()
