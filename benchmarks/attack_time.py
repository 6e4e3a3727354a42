"""Attack time of this checkout against an older revision of rna-core, per backend, as new / old ratios.

    python benchmarks/attack_time.py [--baseline d1796d4] [--new REV]
                                     [--backends torch,mindspore-graph,mindspore-pynative]

PGD-20, APGD-CE (100 iterations) and Square (1,000 queries) on ResNet-18 width 16, batch 128 x 3 x 32 x 32, with
labels = the model's clean predictions (every example starts correctly classified; Square at eps 2/255 so that it
runs many queries). Both implementations run in separate processes on the same weights, input and random numbers,
alternating old / new for ``--rounds`` rounds (so drift in the machine's load hits both alike); each process
first runs every attack once on 8 images (MindSpore GRAPH_MODE compiles there) and then times each attack once.
The baseline is the ``--baseline`` revision of this repository (and the new one the importable ``rna_core``, or
the ``--new`` revision), exported with ``git archive`` and laid out as the installed package (``backends/`` ->
``rna_core/backends``, ``models/`` -> ``rna_core/models``). Prints median seconds per attack and the new / old
ratio; ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ATTACKS = ("PGD", "APGD-CE", "Square")


def _api(be, clf):
    """(tensor, numpy, attack, logits) on this ``rna_core``: the primitives' API, or the one before 2026-12 (a
    Backend with ``attack`` and draw-free ``logits``), so one worker times the old revision and the new."""
    if hasattr(be, "attack"):  # the old API
        return be.tensor, be.numpy, lambda *a: be.attack(clf.model, *a), lambda x: be.logits(clf.model, x)
    from rna_core.attacks import attack

    ops = be.ops
    return ops.tensor, ops.numpy, lambda *a: attack(be, clf.model, *a), lambda x: clf.logits(x)


def worker(args) -> None:
    """Time the three attacks with whatever ``rna_core`` is importable; print one JSON line."""
    import numpy as np

    import rna_core
    from rna_core import attacks as A
    from rna_core.classifier import build_classifier
    from rna_core.registry import get_backend

    name, _, mode = args.backend.partition("-")
    be = get_backend(name, **({"mode": mode} if mode else {}))
    clf = build_classifier({"name": "resnet18", "num_classes": 10, "in_channels": 3, "width": args.width}, "bn",
                           True, be, np.random.default_rng(0), 0)
    tensor, numpy, attack, logits = _api(be, clf)
    clf.model.set_train(False) if hasattr(clf.model, "set_train") else be.set_training(clf.model, False)
    x = np.random.default_rng(1).random((args.batch, 3, 32, 32), dtype=np.float32)
    y = numpy(logits(tensor(x))).argmax(1) if hasattr(be, "attack") else logits(x).argmax(1)
    specs = {"PGD": A.pgd(args.pgd_steps), "APGD-CE": A.apgd("ce", args.apgd_steps),
             "Square": A.square(args.queries, 2 / 255)}
    for spec in specs.values():  # warm-up (and GRAPH_MODE compilation)
        attack(tensor(x[:8]), tensor(y[:8]), spec.replace(steps=2), np.random.default_rng(0))
    out = {"rna_core": str(Path(rna_core.__file__).parent)}
    for label, spec in specs.items():
        t = time.perf_counter()
        adv = numpy(attack(tensor(x), tensor(y), spec, np.random.default_rng(2)))
        out[label] = time.perf_counter() - t
        out[f"{label}/checksum"] = float(np.abs(adv - x).sum())
    print(json.dumps(out))


def baseline_tree(revision: str, into: Path) -> Path:
    """The package of ``revision`` laid out as installed, under ``into``."""
    src = into / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    pkg = into / "site" / "rna_core"
    shutil.copytree(src / "rna_core", pkg)
    shutil.copytree(src / "backends", pkg / "backends")
    shutil.copytree(src / "models", pkg / "models")
    return into / "site"


def run_worker(args, backend: str, path: Path | None) -> dict:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = str(path)
    cmd = [sys.executable, __file__, "--worker", "--backend", backend, "--width", str(args.width), "--batch",
           str(args.batch), "--pgd-steps", str(args.pgd_steps), "--apgd-steps", str(args.apgd_steps), "--queries",
           str(args.queries)]
    done = subprocess.run(cmd, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"worker failed ({backend}, {path or 'importable rna_core'}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", default="d1796d4", help="git revision of the old implementation")
    p.add_argument("--new", default=None, help="git revision of the new one (default: the importable rna_core)")
    p.add_argument("--backends", default="torch,mindspore-graph,mindspore-pynative")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--pgd-steps", type=int, default=20)
    p.add_argument("--apgd-steps", type=int, default=100)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--json", default=None)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--backend", default="torch", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        old_path = baseline_tree(args.baseline, Path(tmp) / "old")
        new_path = baseline_tree(args.new, Path(tmp) / "new") if args.new else None
        for backend in args.backends.split(","):
            runs: dict[str, list[dict]] = {"old": [], "new": []}
            for _ in range(args.rounds):
                runs["old"].append(run_worker(args, backend, old_path))
                runs["new"].append(run_worker(args, backend, new_path))
            med = {impl: {a: statistics.median(r[a] for r in rs) for a in ATTACKS} for impl, rs in runs.items()}
            same = {a: runs["old"][0][f"{a}/checksum"] == runs["new"][0][f"{a}/checksum"] for a in ATTACKS}
            results[backend] = {"seconds": med, "ratio": {a: med["new"][a] / med["old"][a] for a in ATTACKS},
                                "same_examples": same}
            print(f"{backend}: new / old (median of {args.rounds}), ResNet-18 width {args.width}, "
                  f"batch {args.batch} x 3 x 32 x 32; PGD-{args.pgd_steps}, APGD-CE-{args.apgd_steps}, "
                  f"Square-{args.queries}")
            for a in ATTACKS:
                print(f"  {a:12s} old {med['old'][a]:8.2f} s   new {med['new'][a]:8.2f} s   "
                      f"ratio {results[backend]['ratio'][a]:.3f}   same examples: {same[a]}")
    if args.json:
        Path(args.json).write_text(json.dumps({"baseline": args.baseline, "results": results}, indent=1))


if __name__ == "__main__":
    main()
