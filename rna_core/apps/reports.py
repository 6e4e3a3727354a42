"""Markdown and JSON reports in the papers' column order, with the protocol named on every row."""

from __future__ import annotations

import json
from pathlib import Path

PAPER_COLUMNS = ("FGSM", "PGD-20", "CW", "MIFGSM", "DeepFool", "AutoAttack", "AutoAttack-rand")
ROW_PROTOCOLS = {
    "white-box": "white-box",
    "paper": "paper: attack a held draw, fresh draws answer",
    "adaptive": "adaptive: worst of paper, EOT{eot}{transfer}, fresh draws answer",
    "oracle": "oracle (diagnostic): the attacked draw answers",
}


def _columns(metrics: dict) -> list[str]:
    return [c for c in PAPER_COLUMNS if c in metrics.get("attacks", {})] + \
        sorted(set(metrics.get("attacks", {})) - set(PAPER_COLUMNS))


def _value(metrics: dict, key: str) -> str:
    """expected (or, for a randomized model, "expected / persistent") in %."""
    acc = metrics.get(key)
    if acc is None:
        return "-"
    if not metrics.get("random") or f"{key}/persistent" not in metrics or key.endswith("/oracle"):
        return f"{100 * acc:.2f}"
    return f"{100 * acc:.2f} / {100 * metrics[f'{key}/persistent']:.2f}"


def _cell(metrics: dict, col: str, proto: str) -> str:
    text = _value(metrics, f"{col}/{proto}")
    l2 = metrics.get(f"{col}/median-l2/{'eot' if proto == 'adaptive' else proto}")
    return text + (f" (L2 {l2:.3f})" if l2 is not None else "")


def markdown(results: dict[str, dict], title: str = "Robust accuracy (%)") -> str:
    """One row per model and threat model: Natural, the attack columns (papers' order first), worst case. A
    randomized model's cells read "expected / persistent" over R fresh answers; minimum-norm attacks add the
    median L2 distortion of the examples they fooled. Sanity flags follow the table."""
    cols: list[str] = []
    for m in results.values():
        cols += [c for c in _columns(m) if c not in cols]
    head = ["model", "threat model", "Natural", *cols, "worst case"]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in results.items():
        for proto, label in ROW_PROTOCOLS.items():
            if not any(k.endswith(f"/{proto}") for k in m):
                continue
            label = label.format(eot=m.get("eot"), transfer=f", transfer from {m.get('transfer_draws')} held draws"
                                 if m.get("transfer_draws", 1) > 1 else "")
            cells = [name, label, _value(m, "clean"), *(_cell(m, c, proto) for c in cols),
                     "-" if proto == "oracle" else _cell(m, "worst-case", proto)]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for name, m in results.items():
        if m.get("random"):
            se = max(v for k, v in m.items() if k.endswith("/se") and "persistent" not in k)
            lines.append(f"{name}: n = {m['n']} test images, R = {m['answers']} fresh answers per image "
                         f"({m['answer']}), EOT-{m['eot']}; cells: expected / persistent accuracy (all R answers "
                         f"right); standard errors up to {100 * se:.2f} pp (JSON: <key>/se).")
        else:
            se = max((v for k, v in m.items() if k.endswith("/se")), default=0.0)
            lines.append(f"{name}: n = {m['n']} test images, deterministic (white-box); standard errors up to "
                         f"{100 * se:.2f} pp.")
        lines += [f"- {flag}" for flag in m.get("flags", [])]
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
