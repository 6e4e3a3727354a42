"""A model card per evaluation (JSON + markdown): what a RobustBench-style entry carries (architecture, data,
threat model, clean and robust accuracy, forward passes), plus what a randomized model needs to be read honestly
(its randomness, R fresh answers per image, EOT K, expected and persistent accuracies with standard errors, the
protocols run, sanity flags), and provenance (checkpoint SHA-256, rna-core and framework versions)."""

from __future__ import annotations

import datetime
import math
from typing import Any

from ..classifier import Classifier
from .reports import markdown


def _threat_model(metrics: dict) -> list[dict[str, Any]]:
    seen = []
    for specs in metrics.get("attacks", {}).values():
        for s in specs:
            entry = {"norm": "Linf" if s["norm"] == "linf" else "L2",
                     "eps": None if math.isinf(s["eps"]) else s["eps"],
                     "eps_255": None if math.isinf(s["eps"]) or s["norm"] != "linf" else round(255 * s["eps"], 3)}
            if entry not in seen:
                seen.append(entry)
    return seen


def _result(metrics: dict, key: str) -> dict[str, float]:
    out = {"expected": metrics[key], "expected_se": metrics.get(f"{key}/se")}
    if f"{key}/persistent" in metrics and not key.endswith("/oracle"):
        out.update(persistent=metrics[f"{key}/persistent"], persistent_se=metrics.get(f"{key}/persistent/se"))
    return out


def model_card(metrics: dict, clf: Classifier, meta: dict | None = None, checkpoint: str | None = None,
               data: str | None = None, seed: int | None = None) -> dict:
    """The card of one ``evaluation.evaluate`` result on ``clf`` (``meta``: its checkpoint sidecar)."""
    from .. import __version__

    random = metrics["random"]
    headline = "worst-case/adaptive" if random else "worst-case/white-box"
    results = {k: _result(metrics, k) for k in metrics
               if isinstance(metrics[k], float) and not k.endswith(("/se", "/persistent")) and "/median-l2/" not in k
               and not k.startswith("forwards/")}
    return {
        "model": {"checkpoint": checkpoint, "sha256": (meta or {}).get("sha256"), "architecture": clf.arch.get("name"),
                  "arch": clf.arch, "path_space": clf.space.summary(), "paths": str(clf.space.size),
                  "ctrw_noise": clf.controller.noise_size, "randomized": random,
                  "inference_forward_passes": 1},
        "data": {"name": data, "samples": metrics["n"]},
        "threat_model": _threat_model(metrics),
        "evaluation": {"protocols": metrics["protocol"], "answers_per_image": metrics["answers"],
                       "answer_draws": metrics["answer"], "eot": metrics["eot"],
                       "transfer_draws": metrics["transfer_draws"], "seed": seed,
                       "attacks": metrics["attacks"]},
        "headline": {"key": headline, **(_result(metrics, headline) if headline in metrics else {}),
                     "reads": "expected: accuracy of one submission; persistent: every one of R answers right"},
        "clean": _result(metrics, "clean"),
        "results": results,
        "forward_passes_per_image": {k.removeprefix("forwards/"): v for k, v in metrics.items()
                                     if k.startswith("forwards/")},
        "flags": metrics.get("flags", []),
        "per_class": metrics.get("per_class", {}),
        "software": {"rna_core": __version__, **clf.backend.describe()},
        "date": datetime.date.today().isoformat(),
    }


def card_markdown(card: dict, metrics: dict, name: str, by_class: bool = False) -> str:
    """The card as markdown: a summary, the accuracy table and the flags (``by_class``: and the accuracy per
    class)."""
    h, ev, model = card["headline"], card["evaluation"], card["model"]
    threat = ", ".join(f"{t['norm']} eps {t['eps_255']}/255" if t["eps_255"] is not None else
                       f"{t['norm']} eps {t['eps']}" for t in card["threat_model"]) or "none"
    lines = [f"## Model card: {name}", "",
             f"- model: {model['architecture']}, {model['path_space']} ({model['paths']} paths; CTRW noise entries: "
             f"{model['ctrw_noise']}); "
             f"checkpoint {model['checkpoint']} (SHA-256 {model['sha256']})",
             f"- data: {card['data']['name']}, {card['data']['samples']} test images; threat model: {threat}",
             f"- evaluation: {ev['protocols']}; R = {ev['answers_per_image']} answers per image ({ev['answer_draws']}),"
             f" EOT-{ev['eot']}, transfer from {ev['transfer_draws']} held draw(s), seed {ev['seed']}",
             f"- clean: {100 * card['clean']['expected']:.2f}%"
             + (f" expected, {100 * card['clean']['persistent']:.2f}% persistent" if model["randomized"] else ""),
             f"- headline ({h['key']}): " + (f"{100 * h['expected']:.2f}% expected" if "expected" in h else "n/a")
             + (f", {100 * h['persistent']:.2f}% persistent" if "persistent" in h and model["randomized"] else ""),
             f"- software: rna-core {card['software']['rna_core']}, {card['software']['framework']} "
             f"({card['software']['device']}, {card['software']['mode']})", "",
             markdown({name: metrics}, "Accuracy (%)")]
    return "\n".join(lines + (class_table(card["per_class"], model["randomized"]) if by_class else []))


def class_table(per_class: dict[str, dict], randomized: bool, most: int = 20) -> list[str]:
    """Markdown lines of the accuracy per class (rows) for the clean answers and each worst case (columns), as
    "expected / persistent" for a randomized model; none for data with more than ``most`` classes (JSON only)."""
    if not per_class or len(per_class["clean"]["n"]) > most:
        return []
    keys = list(per_class)

    def cell(d: dict, c: int) -> str:
        e, p = d["expected"][c], d["persistent"][c]
        return "-" if e is None else f"{100 * e:.1f}" + (f" / {100 * p:.1f}" if randomized else "")

    lines = ["", "### Accuracy per class (%)", "", "| class | n | " + " | ".join(keys) + " |",
             "|" + "---|" * (len(keys) + 2)]
    for c, n in enumerate(per_class["clean"]["n"]):
        lines.append(f"| {c} | {n} | " + " | ".join(cell(per_class[k], c) for k in keys) + " |")
    return lines
