"""The ``rna-core`` command: train, compare, evaluate, sanity, study, recipes."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from ..attacks import grammar_help, paper_suite, parse_attack, pgd
from ..norms import parse_norms
from ..protocols import ANSWER_MODES, parse_protocols
from ..recipes import RECIPES, get_recipe
from ..runs import load_run, parse_labelled
from ..training import default_run_dir, train
from .outputs import output_dir, output_files
from .plots import require_plots
from .reports import markdown, trials_markdown, write_text


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _positive(text: str) -> int:
    """argparse type: an integer >= 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def _non_negative(text: str) -> int:
    """argparse type: an integer >= 0."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return int(text)


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = _parse_value(value)
    return out


def _backend_arg(args) -> object:
    """The backend named by --backend, with --device (and --mode for MindSpore) when given."""
    options = {} if args.device in (None, "auto") else {"device": args.device}
    if args.backend == "mindspore":
        options["mode"] = args.mode
    if not options:
        return args.backend
    from ..registry import get_backend

    return get_backend(args.backend, **options)


def cmd_train(args) -> int:
    recipe = get_recipe(args.recipe, **_overrides(args.set))
    from ..registry import get_backend

    backend = get_backend(_backend_arg(args))
    res = train(recipe, backend, args.out, resume=args.resume, progress=not args.quiet)
    if backend.world().is_main:  # under torchrun / msrun the other ranks stay quiet
        print(json.dumps({"checkpoint": str(res.checkpoint), "history": res.history, "test": res.final}, indent=1))
    return 0


def cmd_compare(args) -> int:
    """Train the recipe once per norm spec and print their test accuracies side by side."""
    base = get_recipe(args.recipe, **_overrides(args.set))
    if args.json:
        output_files("--json", args.json)
    if args.out:
        output_dir(args.out, "compare --out")
    results, specs = {}, args.norms or ["bn", base.norms]
    for i, norms in enumerate(specs):
        random = len(parse_norms(norms)) > 1
        method = base.method if random or base.method == "clean" else "madry"
        recipe = base.replace(norms=norms, method=method)
        out = Path(args.out) / norms.replace("+", "_") if args.out else default_run_dir(recipe)
        again = (out / "latest.json").is_file()  # run before: continued (a finished one only re-evaluated)
        if not args.quiet:
            print(f"== model {i + 1}/{len(specs)}: {'continuing' if again else 'training'} {recipe.name}: "
                  f"norms={norms} method={method} in {out}" + (" (delete it to train afresh)" if again else ""),
                  file=sys.stderr)
        res = train(recipe, _backend_arg(args), out, resume=args.resume or again, progress=not args.quiet)
        results[f"{norms} ({method})"] = res.final
    print(markdown(results, f"{base.name}: robust accuracy (%) on the test split"))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def _nonempty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path writes nowhere: give a directory")
    return text


def _protocol(text: str) -> str:
    parse_protocols(text)
    return text


def _attacks(text: str, eps: float) -> dict:
    if text == "paper":
        return paper_suite(eps)
    return dict(parse_attack(a, eps) for a in text.split(","))


def _run(args):
    return load_run(args.checkpoint, _backend_arg(args), args.seed, args.samples)


def _report_dir(args, model: str) -> Path:
    """``--report DIR``, else ``reports/<run>-<hash of the model and the evaluation's settings>``: the same command
    on the same model finds its kept evaluation again (and resumes it), another gets its own directory."""
    if args.report:
        return Path(args.report)
    keys = ("backend", "mode", "samples", "attacks", "eps", "eot", "answers", "answer", "protocol",
            "transfer_draws", "seed")
    settings = json.dumps({"model": model, **{k: getattr(args, k) for k in keys}}, sort_keys=True)
    name = Path(args.checkpoint).resolve()
    name = name.parent.name if name.suffix else name.name
    return Path("reports") / f"{name}-{hashlib.sha256(settings.encode()).hexdigest()[:10]}"


def cmd_evaluate(args) -> int:
    """Evaluate a checkpoint; each finished attack is kept in the report directory as it completes (a killed
    evaluation resumes there), the model card is written there at the end."""
    from ..evaluation import evaluate, trials
    from ..evaluation.evaluate import fingerprint
    from .model_card import card_markdown, model_card

    if args.report:
        output_files("--report", *(Path(args.report) / f"card{s}" for s in (".md", ".json")))
    run = _run(args)
    report = _report_dir(args, fingerprint(run.classifier))
    output_dir(report, "the report directory")
    attacks = _attacks(args.attacks, args.eps / 255)
    progress = not args.quiet
    metrics = evaluate(run.classifier, run.test, attacks, args.protocol, args.eot, seed=args.seed, progress=progress,
                       answers=args.answers, answer=args.answer, transfer_draws=args.transfer_draws,
                       save_dir=report)
    name = Path(args.checkpoint).name
    card = model_card(metrics, run.classifier, run.meta, str(args.checkpoint),
                      f"{run.recipe.dataset} test", args.seed)
    out = {"card": card, "metrics": metrics}
    text = card_markdown(card, metrics, name, args.by_class)
    if args.trials:
        out["trials"] = trials(run.classifier, run.test, attacks, args.trials, "paper", args.eot, args.seed,
                               progress=progress)
        text += "\n\n" + trials_markdown(out["trials"], "paper")
    print(text)
    write_text(report / "card", text, out)
    if progress:
        print(f"rna-core evaluate: {report}/card.md and card.json; per-example answers in "
              f"{report}/evaluation.safetensors", file=sys.stderr)
    return 0


def cmd_sanity(args) -> int:
    from .sanity import run_checks, suite_flags

    run = _run(args)
    checks = run_checks(run.classifier, run.test, args.eps / 255, args.steps, args.eot, args.trials, args.queries,
                        args.seed, not args.quiet, args.answers)
    for c in checks:
        print(c)
    warnings = suite_flags(run.classifier, run.test, args.eps / 255, args.steps, args.eot, args.queries, args.seed,
                           not args.quiet, args.answers)
    print("\n".join(warnings) if warnings else "no sanity flags (PGD, APGD-CE, Square, DeepFool)")
    return 0 if all(c.passed for c in checks) and not warnings else 1


def cmd_study(args) -> int:
    from . import studies

    require_plots("rna-core study")
    output_dir(args.out, "study --out")
    run = _run(args)
    clf, data = run.classifier, run.test
    spec = pgd(args.steps, args.eps / 255, args.eps / 255 / 4)
    if args.kind == "transfer":
        res = studies.transfer_matrix(clf, data, spec, args.out, seed=args.seed, progress=not args.quiet)
    elif args.kind == "path-difference":
        res = studies.path_difference(clf, data, spec, args.out, pairs=args.pairs, seed=args.seed,
                                      progress=not args.quiet)
    else:
        res = studies.gradient_similarity(clf, data, args.out, pairs=args.pairs, seed=args.seed,
                                          progress=not args.quiet)
    print(json.dumps({k: v for k, v in res.items() if k in ("study", "files", "median", "accuracy", "rows")},
                     indent=1))
    return 0


def cmd_study_methods(args) -> int:
    """Train and score every (method, seed) cell, cached; the table over seeds and the eps curves."""
    from . import methods_study

    require_plots("rna-core study-methods")
    output_dir(args.out, "study-methods --out")
    methods = args.methods.split(",") if args.methods else list(methods_study.DEFAULT)
    res = methods_study.study(args.out, methods, [int(s) for s in args.seeds.split(",")],
                              _backend_arg(args), args.samples, args.curve_samples, args.answers, not args.quiet,
                              args.cached, **_overrides(args.set))
    print(res["table"])
    print(json.dumps({"files": res["files"]}, indent=1))
    return 0


def cmd_ctrw_report(args) -> int:
    """Table 6 and Fig. 3a over every run given; Fig. 3b on the checkpoint (the first run)."""
    from . import ctrw_report

    require_plots("rna-core ctrw-report")
    output_dir(args.out, "ctrw-report --out")
    runs = {Path(args.checkpoint).name: args.checkpoint, **parse_labelled(args.compare)}
    table = ctrw_report.positive_samples(runs, args.out, args.eps_r, samples=args.ps_samples, seed=args.seed)
    dist = ctrw_report.sigma_distribution(runs, args.out)
    run = _run(args)
    sums = [float(s) for s in args.sums.split(",")] if args.sums else None
    fig = ctrw_report.accuracy_vs_sigma(run.classifier, run.test, pgd(args.steps, args.eps / 255, args.eps / 255 / 4),
                                        sums, args.out, (table["rows"][0]["A"], table["rows"][0]["B"]),
                                        args.protocol, args.eot, args.seed, not args.quiet)
    print(json.dumps({"files": table["files"] + dist["files"] + fig["files"], "table6": table["rows"],
                      "fig3b": fig["rows"]}, indent=1, default=str))
    return 0


def cmd_apart_report(args) -> int:
    """Fig. 1 on the checkpoint (its recipe's training split), Fig. 2 over it and every --compare run."""
    from ..data import load_dataset
    from . import apart_report

    require_plots("rna-core apart-report")
    output_dir(args.out, "apart-report --out")
    run = _run(args)
    recipe = run.recipe
    train_data = load_dataset(recipe.dataset, "train", recipe.data_dir, recipe.image_size)
    train_data = train_data.subset(args.train_samples or args.samples)
    radii = [float(r) for r in args.radii.split(",")]
    fig1 = apart_report.statistics_attack(run.classifier, train_data, radii, [int(n) for n in args.groups.split(",")],
                                          args.out, recipe.batch_size, args.seed, not args.quiet)
    models = {Path(args.checkpoint).name: run.classifier}
    for label, path in parse_labelled(args.compare).items():
        models[label] = load_run(path, _backend_arg(args), args.seed).classifier
    fig2 = apart_report.statistics_shift(models, run.test, radii, args.out, args.seed, progress=not args.quiet)
    print(json.dumps({"files": fig1["files"] + fig2["files"], "fig1": fig1["rows"], "fig2": fig2["rows"]},
                     indent=1))
    return 0


def cmd_parity(args) -> int:
    """Largest relative difference per quantity and normalization type between two backends."""
    from ..registry import get_backend
    from .parity import APART_QUANTITIES, QUANTITIES, compare, compare_apart, compare_attacks

    other = get_backend("mindspore", mode=args.mode) if args.against == "mindspore" else args.against
    rows = {norms: compare("torch", other, norms) for norms in args.norms.split(",")}
    print(f"| norms | {' | '.join(QUANTITIES)} |\n|" + "---|" * (len(QUANTITIES) + 1))
    for norms, d in rows.items():
        print(f"| {norms} | " + " | ".join(f"{d[q]:.1e}" for q in QUANTITIES) + " |")
    if args.apart:
        d = compare_apart("torch", other)
        print(f"\n| APART (small_cnn, bn) | {' | '.join(APART_QUANTITIES)} |\n|" + "---|" * (len(APART_QUANTITIES) + 1))
        print("| relative difference | " + " | ".join(f"{d[q]:.1e}" for q in APART_QUANTITIES) + " |")
    if args.attacks:
        print("\n| attack | pixels differing > 1e-4 | robust accuracy difference | mean L2 relative difference |\n"
              "|---|---|---|---|")
        for label, d in compare_attacks("torch", other).items():
            print(f"| {label} | {d['pixels']:.1e} | {d['accuracy']:.3f} | {d['l2']:.1e} |")
    return 0


def cmd_recipes(args) -> int:
    for name, r in RECIPES.items():
        print(f"{name:24s} {r.dataset:12s} {r.arch:16s} norms={r.norms:18s} method={r.method:9s} epochs={r.epochs}")
    return 0


def _common(sp, out: bool = True) -> None:
    sp.add_argument("--backend", default="torch", help="torch (default) or mindspore")
    sp.add_argument("--device", default=None, help="backend device: cpu or cuda (torch), CPU, GPU or Ascend "
                                                   "(MindSpore); default: auto / CPU")
    sp.add_argument("--mode", default="graph", choices=["graph", "pynative"],
                    help="MindSpore execution mode (default graph: compiled once, fastest)")
    sp.add_argument("--quiet", action="store_true", help="no progress bars")
    if out:
        sp.add_argument("--recipe", default="quick", help=f"one of {sorted(RECIPES)}")
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe key, e.g. --set epochs=2 --set train_attack.steps=3")
        sp.add_argument("--out", default=None, help="run directory (default runs/<recipe>-<norms>-...)")
        sp.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")


def _checkpoint_args(sp) -> None:
    _common(sp, out=False)
    sp.add_argument("checkpoint", help="run directory, .json sidecar or .safetensors file")
    sp.add_argument("--samples", type=_positive, default=None, help="test examples (default: the recipe's)")
    sp.add_argument("--eps", type=float, default=8.0, help="L-inf budget in 1/255 units (default 8)")
    sp.add_argument("--eot", type=_positive, default=8, help="K: draws per gradient of the adaptive EOT attacks")
    sp.add_argument("--answers", type=_positive, default=10, help="R: fresh draws answering every image (default 10)")
    sp.add_argument("--answer", default="per-batch", choices=ANSWER_MODES,
                    help="draws shared by a batch (default) or drawn per example")
    sp.add_argument("--seed", type=_non_negative, default=0)


def _training_commands(sub) -> None:
    t = sub.add_parser("train", help="train a recipe")
    _common(t)
    t.set_defaults(fn=cmd_train)
    c = sub.add_parser("compare", help="train a recipe with several norm specs and compare them")
    _common(c)
    c.add_argument("--norms", action="append", help="norm spec per model (default: bn and the recipe's)")
    c.add_argument("--json", default=None, help="also write the results here")
    c.set_defaults(fn=cmd_compare)
    r = sub.add_parser("recipes", help="list built-in recipes")
    r.set_defaults(fn=cmd_recipes)


def _evaluation_commands(sub) -> None:
    e = sub.add_parser("evaluate", help="robust accuracy of a checkpoint under named protocols")
    _checkpoint_args(e)
    e.add_argument("--attacks", default="pgd",
                   help=f"comma list of {grammar_help()} (n: steps or queries); or 'paper' for the papers' columns")
    e.add_argument("--transfer-draws", type=_positive, default=1,
                   help="H: adaptive transfer from H held draws (the attacker keeps the most confusing candidate)")
    e.add_argument("--protocol", default="both", type=_protocol,
                   help="paper (attack a held draw), adaptive (EOT, transfer), oracle (diagnostic: the attacked draw "
                        "answers), joined with '+'; both = paper+adaptive (default), all")
    e.add_argument("--trials", type=_non_negative, default=0, help="also repeat the paper protocol N times (stability)")
    e.add_argument("--by-class", action="store_true",
                   help="add the accuracy per class (clean and each worst case) to the printed card (JSON: always)")
    e.add_argument("--report", default=None, type=_nonempty, metavar="DIR",
                   help="keep each finished attack in DIR as it completes (a killed evaluation resumes there) and "
                        "write the model card to DIR/card.md and DIR/card.json (default: reports/<run>-<hash of "
                        "the model and settings>)")
    e.set_defaults(fn=cmd_evaluate)
    s_ = sub.add_parser("sanity", help="gradient-masking checks, PASS/FAIL with numbers")
    _checkpoint_args(s_)
    s_.add_argument("--steps", type=_positive, default=10)
    s_.add_argument("--trials", type=_positive, default=5)
    s_.add_argument("--queries", type=_positive, default=1000, help="Square attack queries")
    s_.set_defaults(fn=cmd_sanity)


def _study_commands(sub) -> None:
    st = sub.add_parser("study", help="transferability studies of the RNA paper (JSON + PNG)")
    _checkpoint_args(st)
    st.add_argument("kind", choices=["transfer", "path-difference", "gradients"])
    st.add_argument("--out", default="study", help="output directory")
    st.add_argument("--steps", type=_positive, default=20)
    st.add_argument("--pairs", type=_positive, default=10)
    st.set_defaults(fn=cmd_study)
    sm = sub.add_parser("study-methods", help="train several methods over seeds and score them under the adaptive "
                                              "protocol (cached per cell: resumes across sittings)")
    _common(sm, out=False)
    sm.add_argument("--out", default="study-methods", help="output directory (cells, runs, table, plot)")
    sm.add_argument("--methods", default=None,
                    help="comma list of rna_core.apps.methods_study.METHODS (default: all nine, DEFAULT's order)")
    sm.add_argument("--seeds", default="0,1,2")
    sm.add_argument("--samples", type=_positive, default=500, help="test images scored (default 500)")
    sm.add_argument("--curve-samples", type=_positive, default=200, help="test images of the eps curve")
    sm.add_argument("--answers", type=_positive, default=10, help="R: fresh answers per image (default 10)")
    sm.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a recipe key for every cell")
    sm.add_argument("--cached", action="store_true",
                    help="train nothing: the table and plot of the cells already in --out, the rest listed")
    sm.set_defaults(fn=cmd_study_methods)
    cr = sub.add_parser("ctrw-report", help="CTRW Table 6, sigma distribution, accuracy vs sum(sigma) (JSON + PNG)")
    _checkpoint_args(cr)
    cr.add_argument("--compare", action="append", default=[], metavar="LABEL=RUN",
                    help="more runs for Table 6 and Fig. 3a (e.g. without-constraint=runs/...)")
    cr.add_argument("--out", default="ctrw-report", help="output directory")
    cr.add_argument("--eps-r", type=float, default=0.0, help="cosine threshold of a positive sample")
    cr.add_argument("--ps-samples", type=_positive, default=100_000, help="pairs of draws per random weight")
    cr.add_argument("--sums", default=None, help="sum(sigma) values for Fig. 3b (default 1 and 0.5..6 x size)")
    cr.add_argument("--steps", type=_positive, default=20, help="PGD steps for Fig. 3b")
    cr.add_argument("--protocol", default="paper", type=_protocol)
    cr.set_defaults(fn=cmd_ctrw_report)
    ar = sub.add_parser("apart-report", help="APART Fig. 1 (attacks on BN statistics) and Fig. 2 (shifted "
                                             "statistics), JSON + PNG")
    _checkpoint_args(ar)
    ar.add_argument("--compare", action="append", default=[], metavar="LABEL=RUN",
                    help="more trained runs for Fig. 2 (e.g. apart=runs/quick-apart)")
    ar.add_argument("--out", default="apart-report", help="output directory")
    ar.add_argument("--radii", default="0.05,0.1,0.2,0.4", help="perturbation radii eps")
    ar.add_argument("--groups", default="1,4,16", help="APART group numbers n for Fig. 1")
    ar.add_argument("--train-samples", type=_positive, default=None,
                    help="training examples for Fig. 1 (default: --samples, else all)")
    ar.set_defaults(fn=cmd_apart_report)


def _parity_command(sub) -> None:
    pa = sub.add_parser("parity", help="torch vs another backend on the same weights, input, path and start")
    pa.add_argument("--against", default="mindspore")
    pa.add_argument("--mode", default="pynative", choices=["pynative", "graph"])
    pa.add_argument("--norms", default="bn,bgn:2,in,gn:2,ln,bn+in")
    pa.add_argument("--attacks", action="store_true",
                    help="also run every registered attack's examples on both (small_cnn, bn+in)")
    pa.add_argument("--apart", action="store_true",
                    help="also compare APART's two passes and one SAM / APART / APART-SAM step (small_cnn, bn)")
    pa.set_defaults(fn=cmd_parity)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rna-core", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_training_commands, _evaluation_commands, _study_commands, _parity_command):
        add(sub)
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of an error (also RNA_DEBUG=1); default: one line naming the problem")
    return p


def _origin(e: BaseException) -> str:
    """``file:line`` of where ``e`` was raised."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}" if tb else "?"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, KeyError, OSError, ImportError, RuntimeError, ArithmeticError) as e:
        if args.debug or os.environ.get("RNA_DEBUG"):
            raise
        message = str(e)
        if isinstance(e, KeyError) and e.args and " " not in str(e.args[0]):  # a bare lookup that escaped a check
            message = f"missing key {e.args[0]!r} ({type(e).__name__} in {_origin(e)})"
        print(f"rna-core: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
