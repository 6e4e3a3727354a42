"""Sanity checks against gradient masking (Carlini et al. 2019, Tramer et al. 2020): each prints PASS/FAIL
with its numbers. A tolerance of two binomial standard errors (+0.5 pp) absorbs sampling noise."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from . import attacks as A
from .classifier import Classifier
from .evaluation import evaluate


@dataclass
class Check:
    name: str
    passed: bool
    detail: str

    def __str__(self) -> str:
        return f"[{'PASS' if self.passed else 'FAIL'}] {self.name}: {self.detail}"


def _tol(p: float, n: int) -> float:
    return 2 * math.sqrt(max(p * (1 - p), 1e-4) / n) + 0.005


def run_checks(clf: Classifier, dataset, eps: float = 8 / 255, steps: int = 10, eot: int = 8, trials: int = 5,
               queries: int = 1000, seed: int = 0, progress: bool = False) -> list[Check]:
    """Accuracy vs eps falls to ~0; doubling steps does not help; black-box does not beat white-box; clean
    accuracy is stable across draws. Randomized models are attacked with EOT and the fixed path (worst case)."""
    rng = np.random.default_rng(seed)
    n = len(dataset)
    proto = "adaptive" if clf.controller.is_random else "both"
    key = "worst-case/adaptive" if clf.controller.is_random else "worst-case/white-box"

    def acc(specs) -> float:
        return evaluate(clf, dataset, specs, proto, eot, rng, progress=progress)[key]

    checks = []
    sweep = [eps / 4, eps, 4 * eps, 16 * eps]
    accs = [acc([A.pgd(steps, e, e / 4)]) for e in sweep]
    text = ", ".join(f"{255 * e:.0f}/255: {100 * a:.1f}%" for e, a in zip(sweep, accs, strict=True))
    checks.append(Check("accuracy falls to ~0 as eps grows", accs[-1] <= 0.05 and
                        all(b <= a + _tol(a, n) for a, b in itertools.pairwise(accs)), text))
    a1, a2 = accs[1], acc([A.pgd(2 * steps, eps, eps / 4)])
    checks.append(Check("doubling PGD steps does not raise accuracy", a2 <= a1 + _tol(a1, n),
                        f"PGD-{steps}: {100 * a1:.1f}%, PGD-{2 * steps}: {100 * a2:.1f}%"))
    sq = acc([A.square(queries, eps)])
    checks.append(Check("black-box (Square) does not beat white-box", sq >= a1 - _tol(a1, n),
                        f"Square-{queries}: {100 * sq:.1f}%, white-box PGD-{steps}: {100 * a1:.1f}%"))
    if clf.controller.is_random:
        transfer = evaluate(clf, dataset, [A.pgd(steps, eps, eps / 4)], "paper", eot, rng,
                            progress=progress)[f"PGD-{steps}/paper"]
        checks.append(Check("transfer (attack one draw, answer another) does not beat adaptive white-box",
                            transfer >= a1 - _tol(a1, n),
                            f"transfer: {100 * transfer:.1f}%, adaptive: {100 * a1:.1f}%"))
    cleans = [evaluate(clf, dataset, [], rng=rng, progress=progress)["clean"] for _ in range(trials)]
    spread = max(cleans) - min(cleans)
    checks.append(Check("clean accuracy is stable across draws", spread <= 0.05,
                        f"{trials} trials: mean {100 * np.mean(cleans):.1f}%, std {100 * np.std(cleans):.2f} pp, "
                        f"range {100 * spread:.1f} pp"))
    return checks
