"""The ``rna-core`` command: train, evaluate, compare, recipes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .attacks import pgd
from .norms import parse_norms
from .recipes import RECIPES, get_recipe
from .training import evaluate_checkpoint, train


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = _parse_value(value)
    return out


def _backend_arg(args) -> object:
    if args.device in (None, "auto"):
        return args.backend
    from .registry import get_backend

    return get_backend(args.backend, device=args.device)


PROTOCOL_ORDER = ("white-box", "paper", "fixed-path", "worst-case")


def table(results: dict[str, dict]) -> str:
    """A markdown table of accuracies (%), one row per model: Natural, then each attack under each protocol."""
    attack_keys = {k for m in results.values() for k in m if "/" in k}
    keys = ["clean", *sorted(attack_keys, key=lambda k: (k.split("/")[0], PROTOCOL_ORDER.index(k.split("/")[1])))]
    head = "| model | " + " | ".join("Natural" if k == "clean" else "{} ({})".format(*k.split("/")) for k in keys)
    lines = [head + " |", "|" + "---|" * (len(keys) + 1)]
    for name, m in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * m[k]:.2f}" if k in m else "-" for k in keys) + " |")
    return "\n".join(lines)


def cmd_train(args) -> int:
    recipe = get_recipe(args.recipe, **_overrides(args.set))
    res = train(recipe, _backend_arg(args), args.out, resume=args.resume, progress=not args.quiet)
    print(json.dumps({"checkpoint": str(res.checkpoint), "history": res.history, "test": res.final}, indent=1))
    return 0


def cmd_compare(args) -> int:
    """Train the recipe once per norm spec and print their test accuracies side by side."""
    base = get_recipe(args.recipe, **_overrides(args.set))
    results = {}
    for norms in args.norms or ["bn", base.norms]:
        random = len(parse_norms(norms)) > 1
        method = base.method if random or base.method == "clean" else "madry"
        recipe = base.replace(norms=norms, method=method)
        out = Path(args.out) / norms.replace("+", "_") if args.out else None
        print(f"== training {recipe.name}: norms={norms} method={method}", file=sys.stderr)
        res = train(recipe, _backend_arg(args), out, resume=args.resume, progress=not args.quiet)
        results[f"{norms} ({method})"] = res.final
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def cmd_evaluate(args) -> int:
    attacks = [pgd(args.steps, args.eps / 255, args.alpha / 255, args.eot)]
    metrics = evaluate_checkpoint(args.checkpoint, _backend_arg(args), attacks, args.samples, args.seed,
                                  not args.quiet)
    print(json.dumps(metrics, indent=1))
    print(table({args.checkpoint: metrics}))
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=1))
    return 0


def cmd_recipes(args) -> int:
    for name, r in RECIPES.items():
        print(f"{name:24s} {r.dataset:12s} {r.arch:16s} norms={r.norms:18s} method={r.method:9s} epochs={r.epochs}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rna-core", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, out: bool = True):
        sp.add_argument("--backend", default="torch", help="torch (default) or mindspore")
        sp.add_argument("--device", default=None, help="backend device, e.g. cpu or cuda (default: auto)")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")
        if out:
            sp.add_argument("--recipe", default="quick", help=f"one of {sorted(RECIPES)}")
            sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override a recipe field, e.g. --set epochs=2 --set train_attack.steps=3")
            sp.add_argument("--out", default=None, help="run directory (default runs/<recipe>-<norms>-...)")
            sp.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")

    t = sub.add_parser("train", help="train a recipe")
    common(t)
    t.set_defaults(fn=cmd_train)
    c = sub.add_parser("compare", help="train a recipe with several norm specs and compare them")
    common(c)
    c.add_argument("--norms", action="append", help="norm spec per model (default: bn and the recipe's)")
    c.add_argument("--json", default=None, help="also write the results here")
    c.set_defaults(fn=cmd_compare)
    e = sub.add_parser("evaluate", help="clean and PGD accuracy of a checkpoint")
    common(e, out=False)
    e.add_argument("checkpoint", help="run directory, .json sidecar or .safetensors file")
    e.add_argument("--samples", type=int, default=None, help="test examples (default: the recipe's eval_samples)")
    e.add_argument("--steps", type=int, default=20)
    e.add_argument("--eps", type=float, default=8.0, help="in 1/255 units")
    e.add_argument("--alpha", type=float, default=2.0, help="in 1/255 units")
    e.add_argument("--eot", type=int, default=1, help="gradient samples per PGD step (EOT)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", default=None)
    e.set_defaults(fn=cmd_evaluate)
    r = sub.add_parser("recipes", help="list built-in recipes")
    r.set_defaults(fn=cmd_recipes)
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, ImportError) as e:
        print(f"rna-core: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
