"""Training-step time of SAM, APART and APART-SAM against standard training (the "budget" of APART Table 1).

    python benchmarks/apart_step_time.py [--arch wrn40_2] [--batch 128] [--size 32] [--groups 16] [--backend torch]

Each method runs its full step (rna_core.methods) on the same batch, interleaved over rounds; prints the
median milliseconds per step and the ratio to standard training. The two-pass methods should cost about 2x
(the paper's budget); what they cost beyond that is the price of Eq. 3's explicit BN and of the gradient algebra.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from rna_core.backend import SGDConfig
from rna_core.classifier import build_classifier
from rna_core.methods import take_step
from rna_core.recipes import get_recipe
from rna_core.registry import get_backend

METHODS = ("clean", "sam", "apart", "apart-sam")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="wrn40_2")
    p.add_argument("--width", type=int, default=None, help="for resnet18 / preact_resnet18 / small_cnn")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--groups", type=int, default=16)
    p.add_argument("--backend", default="torch", help="torch, mindspore (GRAPH_MODE)")
    p.add_argument("--device", default=None)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    options = {"device": args.device} if args.device else {}
    be = get_backend(args.backend, **({"mode": "graph"} if args.backend == "mindspore" else {}), **options)
    arch = {"name": args.arch, "num_classes": 10, "in_channels": 3, "width": args.width}
    clf = build_classifier(arch, "bn", True, be, np.random.default_rng(0))
    opt = be.make_optimizer(clf.model, SGDConfig(0.01))
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 3, args.size, args.size), dtype=np.float32)
    y = rng.integers(0, 10, args.batch)
    recipe = get_recipe("quick-apart", apart_groups=args.groups, batch_size=args.batch)
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    for _ in range(args.rounds):
        for method in METHODS:
            for i in range(args.warmup + args.steps):
                t = time.perf_counter()
                res = take_step(clf, opt, method, x, y, recipe, rng, 0.01)
                loss = float(res.loss)  # a host read: the step is done
                if i >= args.warmup:
                    times[method].append(time.perf_counter() - t)
                assert np.isfinite(loss)
    med = {m: 1000 * statistics.median(v) for m, v in times.items()}
    for m in METHODS:
        print(f"{m:10s} {med[m]:9.1f} ms/step   {med[m] / med['clean']:.2f}x standard")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "ms_per_step": med}, f, indent=1)


if __name__ == "__main__":
    main()
