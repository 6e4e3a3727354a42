"""Markdown and JSON reports in the papers' column order, with the protocol named on every row."""

from __future__ import annotations

import json
from pathlib import Path

PAPER_COLUMNS = ("FGSM", "PGD-20", "CW", "MIFGSM", "DeepFool", "AutoAttack")
ROW_PROTOCOLS = {"white-box": "white-box", "paper": "paper (attack one draw, answer a fresh one)",
                 "adaptive": "adaptive (worst of fixed-path and EOT)"}


def _columns(metrics: dict) -> list[str]:
    found = {k.split("/")[0] for k in metrics if "/" in k and not k.startswith("worst-case")}
    ordered = [c for c in PAPER_COLUMNS if c in found]
    return ordered + sorted(found - set(ordered))


def _cell(metrics: dict, col: str, proto: str) -> str:
    acc = metrics.get(f"{col}/{proto}")
    if acc is None:
        return "-"
    l2 = metrics.get(f"{col}/median-l2/{'eot' if proto == 'adaptive' else proto}")
    return f"{100 * acc:.2f}" + (f" (L2 {l2:.3f})" if l2 is not None else "")


def markdown(results: dict[str, dict], title: str = "Robust accuracy (%)") -> str:
    """One row per model and protocol: Natural, the attack columns (papers' order first), worst case.
    Minimum-norm attacks show the median L2 distortion of the examples they fooled."""
    cols: list[str] = []
    for m in results.values():
        cols += [c for c in _columns(m) if c not in cols]
    head = ["model", "protocol", "Natural", *cols, "worst case"]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in results.items():
        for proto, label in ROW_PROTOCOLS.items():
            if f"worst-case/{proto}" not in m and not any(k.endswith(f"/{proto}") for k in m):
                continue
            cells = [name, label, f"{100 * m['clean']:.2f}", *(_cell(m, c, proto) for c in cols),
                     _cell(m, "worst-case", proto)]
            lines.append("| " + " | ".join(cells) + " |")
    n = {m.get("n") for m in results.values()}
    eot = {m.get("eot") for m in results.values() if m.get("protocol") != "white-box"}
    lines += ["", f"n = {', '.join(str(v) for v in n)} test images" +
              (f"; EOT over {', '.join(str(v) for v in eot)} draws" if eot else "") + "."]
    return "\n".join(lines)


def trials_markdown(trials: dict[str, dict], protocol: str) -> str:
    """Repeated inference trials (``evaluation.trials``): mean, std, min and max per metric, in %."""
    n = len(next(iter(trials.values()))["trials"]) if trials else 0
    return f"{n} inference trials ({protocol} protocol):\n" + "\n".join(
        f"- {k}: mean {100 * v['mean']:.2f}, std {100 * v['std']:.2f}, min {100 * v['min']:.2f}, "
        f"max {100 * v['max']:.2f}" for k, v in trials.items())


def write_text(path: str | Path, text: str, data: dict) -> tuple[Path, Path]:
    """``path``.md holding ``text`` and ``path``.json holding ``data``."""
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    md, js = base.with_suffix(".md"), base.with_suffix(".json")
    md.write_text(text + "\n")
    js.write_text(json.dumps(data, indent=1))
    return md, js


def write(results: dict[str, dict], path: str | Path, title: str = "Robust accuracy (%)") -> tuple[Path, Path]:
    """``path``.md (the markdown table) and ``path``.json (the results)."""
    return write_text(path, markdown(results, title), results)
