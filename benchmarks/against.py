"""A benchmark of this checkout against the same benchmark of an older revision, as new / old ratios.

    python benchmarks/against.py [--baseline 100ff97] [--rounds 3] SCRIPT [ARGS ...]

SCRIPT is one of this folder's benchmarks that writes ``--json`` (``step_time.py``, ``apart_step_time.py``,
``mindspore_step_time.py``, ``train_throughput.py``). The old revision's copy of SCRIPT runs on the old package
(exported with ``git archive`` and laid out as installed: ``backends/`` -> ``rna_core/backends``, ``models/`` ->
``rna_core/models``), this checkout's copy on the importable ``rna_core``, with the same ARGS, alternating old /
new for ``--rounds`` rounds so that drift in the machine's load hits both alike. Every number both JSON outputs
hold under the same key (milliseconds, seconds) is printed with the median over rounds of each and the new / old
ratio (< 1: the new revision is faster). ``attack_time.py`` has its own ``--baseline`` and ``--new``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from attack_time import baseline_tree

HERE = Path(__file__).resolve().parent


def leaves(tree, prefix: str = "") -> dict[str, float]:
    """Every number of a JSON tree by its slash-joined key (``args`` and booleans left out)."""
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            if k != "args":
                out.update(leaves(v, f"{prefix}{k}/"))
        return out
    if isinstance(tree, int | float) and not isinstance(tree, bool):
        return {prefix.rstrip("/"): float(tree)}
    return {}


def run(script: Path, args: list[str], site: Path | None, out: Path) -> dict[str, float]:
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    cmd = [sys.executable, str(script), *args, "--json", str(out)]
    done = subprocess.run(cmd, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{script} failed ({site or 'this checkout'}):\n{done.stderr[-3000:]}")
    return leaves(json.loads(out.read_text()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", default="100ff97", help="git revision of the old implementation")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", default=None, help="write the medians and ratios here")
    p.add_argument("script", help="a benchmark of this folder")
    p.add_argument("args", nargs=argparse.REMAINDER, help="its arguments (the same for old and new)")
    args = p.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        site = baseline_tree(args.baseline, Path(tmp) / "old")
        old_script = Path(tmp) / "old" / "src" / "benchmarks" / args.script
        for r in range(args.rounds):
            runs["old"].append(run(old_script, args.args, site, Path(tmp) / f"old-{r}.json"))
            runs["new"].append(run(HERE / args.script, args.args, None, Path(tmp) / f"new-{r}.json"))
    keys = [k for k in runs["new"][0] if all(k in r for r in runs["old"] + runs["new"])]
    med = {side: {k: statistics.median(r[k] for r in rs) for k in keys} for side, rs in runs.items()}
    ratio = {k: med["new"][k] / med["old"][k] for k in keys if med["old"][k]}
    print(f"{args.script} {' '.join(args.args)}: new / old ({args.baseline}), median of {args.rounds} rounds")
    for k in keys:
        print(f"  {k:40s} old {med['old'][k]:10.2f}   new {med['new'][k]:10.2f}   "
              f"ratio {ratio.get(k, float('nan')):.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"baseline": args.baseline, "script": args.script, "args": args.args,
                                               "median": med, "ratio": ratio}, indent=1))


if __name__ == "__main__":
    main()
