"""``rna-core study-methods``: can any training make a randomized model beat a deterministic one under the adaptive,
fresh-answer threat model? Each method of ``METHODS`` is trained on the quick setting for every seed, then scored
clean and under PGD-20 and APGD-CE (the adaptive protocol for a randomized model: the per-example worst of the
paper, EOT and transfer attacks, R fresh answers; white-box for a deterministic one), expected and persistent, and
along an eps curve (PGD-20 at 0 ... 64/255). Every (method, seed) cell is cached in ``OUT/cells/`` as it finishes
(its run in ``OUT/runs/``), so the study resumes across sittings; the summary gives the mean and the spread (min,
max) over seeds and each method's training cost in forward-backward passes per image. ``OUT/methods.json``,
``OUT/methods.md`` and ``OUT/eps_curve.png`` (one panel per method)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .. import attacks as A
from ..checkpoints import atomic_write
from ..evaluation import evaluate
from ..methods import passes_per_image
from ..recipes import get_recipe
from ..runs import load_run
from ..training import train
from .plots import pyplot

# name -> (base recipe, overrides): the quick setting's BN and RNA (BN+IN) models and the CTRW model. The "-k1"
# methods are EOT training at black-box / projected training's cost: each of the 5 attack steps on one fresh draw
# (K = 1), so steps + 1 = 6 forward-backward passes per image, as the method they are compared with.
METHODS = {
    "bn-madry": ("quick", {"norms": "bn", "method": "madry"}),
    "bn-trades": ("quick", {"norms": "bn", "method": "trades"}),
    "rna-blackbox": ("quick", {"method": "blackbox"}),
    "rna-eot": ("quick", {"method": "eot"}),
    "rna-eot-k1": ("quick", {"method": "eot", "eot_attack_draws": 1}),
    "rna-trades": ("quick", {"method": "trades"}),
    "ctrw-project": ("quick-ctrw", {}),
    "ctrw-eot": ("quick-ctrw", {"method": "eot"}),
    "ctrw-eot-k1": ("quick-ctrw", {"method": "eot", "eot_attack_draws": 1}),
}
DEFAULT = ("bn-madry", "bn-trades", "rna-blackbox", "rna-eot-k1", "rna-eot", "rna-trades", "ctrw-project",
           "ctrw-eot-k1", "ctrw-eot")  # the study's rows, in order
CURVE = (0, 2, 4, 8, 16, 32, 64)  # eps in 1/255


def settings_of(backend, keys: dict, samples: int, curve_samples: int, answers: int) -> dict:
    """What a cell's numbers depend on besides (method, seed), as its JSON holds it."""
    return json.loads(json.dumps({"backend": getattr(backend, "name", backend), "keys": keys, "samples": samples,
                                  "curve_samples": curve_samples, "answers": answers}, default=str))


def cached(out: Path, name: str, seed: int, settings: dict) -> dict | None:
    """The cached cell of (method, seed), or None; a cell made with other settings is refused by name."""
    path = out / "cells" / f"{name}-s{seed}.json"
    if not path.is_file():
        return None
    found = json.loads(path.read_text())
    theirs = found.get("settings", {})
    differ = sorted(k for k in set(settings) | set(theirs) if settings.get(k) != theirs.get(k))
    if differ:
        what = ", ".join(f"{k}: {theirs.get(k)!r}, now {settings.get(k)!r}" for k in differ)
        raise ValueError(f"{path} was made with other settings ({what}); choose another --out or delete the cell")
    return found


def cell(out: Path, name: str, seed: int, keys: dict, backend, samples: int, curve_samples: int, answers: int,
         progress: bool) -> dict:
    """One (method, seed): trained (or continued) and scored, cached in ``out/cells``."""
    settings = settings_of(backend, keys, samples, curve_samples, answers)
    found = cached(out, name, seed, settings)
    if found is not None:
        return found
    path = out / "cells" / f"{name}-s{seed}.json"
    base, overrides = METHODS[name]
    recipe = get_recipe(base, **{**overrides, **keys, "seed": seed, "eval_attack": None})
    run_dir = out / "runs" / f"{name}-s{seed}"
    train(recipe, backend, run_dir, resume=(run_dir / "latest.json").is_file(), progress=progress,
          evaluate_at_end=False)
    run = load_run(run_dir, backend, seed, samples)
    attacks = {"PGD-20": [A.pgd(20)], "APGD-CE": [A.apgd("ce", 50)]}
    scores = evaluate(run.classifier, run.test, attacks, "adaptive", 8, seed=seed, answers=answers,
                      progress=progress)
    group = "white-box" if not scores["random"] else "adaptive"
    curve_data = run.test.subset(curve_samples)
    curve = []
    for e in CURVE:
        spec = {"PGD-20": [A.pgd(20, e / 255, max(e, 1) / 255 / 4)]} if e else {}
        r = evaluate(run.classifier, curve_data, spec, "adaptive", 8, seed=seed, answers=answers, progress=False)
        key = f"worst-case/{group}" if e else "clean"
        curve.append({"eps_255": e, "expected": r[key], "persistent": r.get(f"{key}/persistent", r[key])})
    result = {"method": name, "seed": seed, "recipe": recipe.name, "training": recipe.method, "norms": recipe.norms,
              "cost": passes_per_image(recipe), "epochs": recipe.epochs, "threat_model": group, "n": scores["n"],
              "answers": scores["answers"], "clean": scores["clean"],
              "clean/persistent": scores.get("clean/persistent", scores["clean"]),
              "robust": scores[f"worst-case/{group}"],
              "robust/persistent": scores.get(f"worst-case/{group}/persistent", scores[f"worst-case/{group}"]),
              "flags": scores["flags"], "curve": curve, "settings": settings}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(result, indent=1).encode())
    return result


def summary(cells: list[dict]) -> dict[str, dict]:
    """Per method: mean, min and max over seeds of clean and robust (expected, persistent), and its cost."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(c["method"] for c in cells):
        mine = [c for c in cells if c["method"] == name]
        row = {"seeds": [c["seed"] for c in mine], "cost": mine[0]["cost"], "epochs": mine[0]["epochs"],
               "threat_model": mine[0]["threat_model"]}
        for key in ("clean", "clean/persistent", "robust", "robust/persistent"):
            v = np.array([c[key] for c in mine])
            row[key] = {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())}
        out[name] = row
    return out


def markdown(rows: dict[str, dict], answers: int, n: int, missing: list[str]) -> str:
    """The table: mean [min, max] over seeds, in %."""
    def fmt(s: dict) -> str:
        return f"{100 * s['mean']:.1f} [{100 * s['min']:.1f}, {100 * s['max']:.1f}]"

    lines = ["| method | threat model | seeds | passes / image / step | clean | clean, persistent | PGD-20 + APGD-CE "
             "worst case | persistent |", "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['threat_model']} | {len(r['seeds'])} | {r['cost']:g} | {fmt(r['clean'])} | "
                     f"{fmt(r['clean/persistent'])} | {fmt(r['robust'])} | {fmt(r['robust/persistent'])} |")
    lines.append(f"\nmean [min, max] over seeds; {n} test images, R = {answers} fresh answers per image for the "
                 "randomized models (adaptive: per example the worst of paper, EOT-8 and transfer attacks); "
                 "a deterministic model's persistent accuracy is its accuracy.")
    if missing:
        lines.append(f"Not yet run (--cached): {', '.join(missing)}.")
    return "\n".join(lines)


def tabulate(out: Path, methods: list[str], seeds: list[int], settings: dict) -> tuple[list[dict], str]:
    """The cached cells of ``methods`` x ``seeds`` in ``out/cells`` (in that order) and their table; cells not made
    yet are listed under it."""
    cells, missing = [], []
    for name, seed in ((m, s) for m in methods for s in seeds):
        found = cached(out, name, seed, settings)
        cells += [found] if found else []
        missing += [] if found else [f"{name} seed {seed}"]
    if not cells:
        raise FileNotFoundError(f"no cell of {methods} x seeds {seeds} in {out / 'cells'}: run without --cached")
    return cells, markdown(summary(cells), settings["answers"], cells[0]["n"], missing)


def plot(cells: list[dict], out: Path) -> Path:
    """Robust accuracy against eps, one panel per method, one line per seed (expected solid, persistent dashed)."""
    plt = pyplot()
    names = list(dict.fromkeys(c["method"] for c in cells))
    cols = min(4, len(names))
    fig, axes = plt.subplots(math.ceil(len(names) / cols), cols, figsize=(3.2 * cols, 2.8 * math.ceil(len(names) /
                                                                                                   cols)),
                             squeeze=False, sharey=True)
    for ax, name in zip(axes.flat, names, strict=False):
        for c in (c for c in cells if c["method"] == name):
            eps = [p["eps_255"] for p in c["curve"]]
            ax.plot(eps, [100 * p["expected"] for p in c["curve"]], marker="o", color=f"C{c['seed'] % 10}",
                    label=f"seed {c['seed']}")
            ax.plot(eps, [100 * p["persistent"] for p in c["curve"]], ls="--", color=f"C{c['seed'] % 10}")
        ax.set_title(name)
        ax.set_xscale("symlog", linthresh=2)
        ax.set_xticks(CURVE, [str(e) for e in CURVE])
        ax.set_xlabel("eps (x/255)")
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("PGD-20 accuracy against eps: white-box (deterministic) or adaptive (randomized); solid expected, "
                 "dashed persistent over the R answers", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "eps_curve.png", dpi=110)
    plt.close(fig)
    return out / "eps_curve.png"


def study(out: str | Path, methods: list[str], seeds: list[int], backend="torch", samples: int = 500,
          curve_samples: int = 200, answers: int = 10, progress: bool = True, cached_only: bool = False,
          **keys) -> dict:
    """Every (method, seed) cell (cached), then the summary, the table and the plot. ``cached_only``: no training,
    the table of the cells already made (the others listed as not yet run)."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {sorted(METHODS)}")
    out = Path(out)
    if not cached_only:
        for i, (name, seed) in enumerate((m, s) for m in methods for s in seeds):
            if progress:
                print(f"== study methods: cell {i + 1}/{len(methods) * len(seeds)}: {name}, seed {seed}", flush=True)
            cell(out, name, seed, keys, backend, samples, curve_samples, answers, progress)
    cells, table = tabulate(out, methods, seeds, settings_of(backend, keys, samples, curve_samples, answers))
    rows = summary(cells)
    result = {"study": "methods", "methods": rows, "cells": cells, "files": [str(out / "methods.md"),
                                                                              str(out / "methods.json")]}
    atomic_write(out / "methods.md", (table + "\n").encode())
    atomic_write(out / "methods.json", json.dumps(result, indent=1).encode())
    result["files"].append(str(plot(cells, out)))
    result["table"] = table
    return result
