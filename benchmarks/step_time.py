"""Training-step time of RNA against plain BN and against a naive RNA (every candidate computed).

    python benchmarks/step_time.py [--arch resnet18] [--width 64] [--batch 64] [--size 32] [--norms bn+in ...]

Each variant runs the same clean training step (forward, cross-entropy, backward, SGD) on the same
input; RNA draws a fresh path per step. Prints median milliseconds per step and, per RNA space, the
ratios RNA / BN and naive / RNA. The default spaces are the paper's BN+IN and a six-candidate space
(BGN and GN with group sizes 1, 2, 4), where computing every candidate costs the most.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from rna_core.backend import SGDConfig
from rna_core.backends.torch.layers import NormSlot
from rna_core.classifier import build_classifier
from rna_core.losses import CE_MEAN
from rna_core.methods import Step


class NaiveNormSlot(NormSlot):
    """Computes every candidate and selects one with a tensor index (how a naive RNA would)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = torch.stack([getattr(self, k)(x) for k in self.keys])
        k = 0 if self.slot is None else int(self.state.path[self.slot])
        return outs[torch.tensor(k, device=x.device)]


def build(norms: str, args, naive: bool = False):
    clf = build_classifier({"name": args.arch, "num_classes": 10, "in_channels": 3, "width": args.width}, norms,
                           True, "torch", np.random.default_rng(0))
    clf.backend.device = torch.device(args.device)
    clf.model.to(args.device)
    if naive:
        for m in clf.model.modules():
            if isinstance(m, NormSlot):
                m.__class__ = NaiveNormSlot
    return clf


def time_steps(clf, x, y, steps: int, warmup: int) -> list[float]:
    opt = clf.backend.make_optimizer(clf.model, SGDConfig(0.01))
    step = Step(clf, opt, None, None, 0.01)
    times = []
    for i in range(warmup + steps):
        if x.is_cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        step.descend(CE_MEAN, x, y)
        if x.is_cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--norms", action="append", help="RNA spaces (default: bn+in and bgn@1-4+gn@1-4)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the variants")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, device=args.device)
    y = torch.randint(0, 10, (args.batch,), device=args.device)
    spaces = args.norms or ["bn+in", "bgn@1-4+gn@1-4"]
    variants = {"bn": build("bn", args)}
    for space in spaces:
        variants[f"rna {space}"] = build(space, args)
        variants[f"naive {space}"] = build(space, args, naive=True)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):  # interleave so drift in machine load hits every variant alike
        for name, clf in variants.items():
            times[name] += time_steps(clf, x, y, args.steps, args.warmup)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {space: {"rna_over_bn": med[f"rna {space}"] / med["bn"],
                      "naive_over_rna": med[f"naive {space}"] / med[f"rna {space}"]} for space in spaces}
    print(f"{args.arch} width {args.width}, batch {args.batch}x3x{args.size}x{args.size} on {args.device}, "
          f"median of {args.rounds} x {args.steps} steps")
    for k, v in med.items():
        print(f"  {k:24s} {1000 * v:9.1f} ms/step")
    for space, r in ratios.items():
        print(f"{space:16s} RNA / BN = {r['rna_over_bn']:.3f}   naive / RNA = {r['naive_over_rna']:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": args.device, "arch": args.arch, "width": args.width, "batch": args.batch,
                       "size": args.size, "ms_per_step": {k: 1000 * v for k, v in med.items()}, "ratios": ratios},
                      f, indent=1)


if __name__ == "__main__":
    main()
