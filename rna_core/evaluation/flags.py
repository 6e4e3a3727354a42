"""Signs of gradient masking one evaluation already shows (Carlini et al. 2019, Tramer et al. 2020), as WARN lines
on every result (``evaluate(...)["flags"]``): first a model near chance (clean accuracy within ``CHANCE_MARGIN``,
5 points, of 1 / K: nothing else means anything then); APGD / AutoAttack scoring above PGD, a gradient-free
attack beating every budgeted gradient attack, a minimum-norm attack (CW, DeepFool) leaving accuracy at the clean
level, and EOT-K not improving on the one-draw attack of a randomized model. A tolerance of two binomial standard
errors (+0.5 pp) absorbs sampling noise. The checks that need runs of their own are ``rna-core sanity``
(``rna_core.apps.sanity``)."""

from __future__ import annotations

import math

from .. import attacks as A

CHANCE_MARGIN = 0.05  # a model within 5 points of 1 / K is "near chance"


def tolerance(p: float, n: int) -> float:
    """Two binomial standard errors of an accuracy p on n examples, plus 0.5 percentage points."""
    return 2 * math.sqrt(max(p * (1 - p), 1e-4) / n) + 0.005


def _names(specs: list[dict]) -> set[str]:
    return {s["name"] for s in specs}


def flags(m: dict) -> list[str]:
    """WARN lines for the signs of gradient masking visible in one evaluation's metrics (``evaluation.evaluate``)."""
    out, n, cols = [], m["n"], m.get("attacks", {})

    def pct(v: float) -> str:
        return f"{100 * v:.1f}%"

    chance = 1 / m["classes"] if m.get("classes") else None
    if chance is not None and m["clean"] <= chance + CHANCE_MARGIN:
        out.append(f"WARN the model is near chance (clean {pct(m['clean'])}, chance 1/{m['classes']} = {pct(chance)}): "
                   "its robust accuracies say nothing about robustness (an untrained or broken model)")

    for member in ("white-box", "paper", "eot"):
        got = {c: m[f"{c}/{member}"] for c in cols if f"{c}/{member}" in m}
        pgd = [c for c in got if _names(cols[c]) == {"pgd"}]
        apgd = [c for c in got if all(name.startswith("apgd") for name in _names(cols[c]))]
        free = [c for c in got if _names(cols[c]) <= set(A.names("gradient_free"))]
        gradient = [c for c in got if not _names(cols[c]) & set(A.names("gradient_free") + A.names("minimum_norm"))]
        if pgd:
            best = min(pgd, key=got.get)
            out += [f"WARN [{member}] {c} scores {pct(got[c])}, above {best}'s {pct(got[best])}: APGD should be at "
                    "least as strong as PGD" for c in apgd if got[c] > got[best] + tolerance(got[best], n)]
        if gradient:
            best = min(gradient, key=got.get)
            out += [f"WARN [{member}] gradient-free {c} ({pct(got[c])}) beats every gradient attack (best: {best}, "
                    f"{pct(got[best])}): the gradients may be masked" for c in free
                    if got[c] < got[best] - tolerance(got[best], n)]
        for c in got:
            minimum_norm = [s for s in cols[c] if s["name"] in A.names("minimum_norm") and math.isinf(s["eps"])]
            if minimum_norm and got[c] >= m["clean"] - tolerance(m["clean"], n):
                survive = "" if member == "white-box" else ", or its examples, just across the boundary of the " \
                    "draw it attacked, do not survive fresh draws"
                out.append(f"WARN [{member}] {c} leaves accuracy at the clean level ({pct(got[c])} vs "
                           f"{pct(m['clean'])}): unbounded, it stops just past the decision boundary it finds, so on "
                           f"the model it attacks it should fool almost every example; its gradient did not lead it "
                           f"across{survive}")
    for c in cols:
        if f"{c}/eot" in m and f"{c}/paper" in m and m[f"{c}/eot"] >= m[f"{c}/paper"]:
            out.append(f"WARN [eot] {c} with EOT-{m['eot']} ({pct(m[f'{c}/eot'])}) does not improve on the one-draw "
                       f"attack ({pct(m[f'{c}/paper'])}) of this randomized model")
    return out
