"""``rna-core sanity``: the checks against gradient masking that need runs of their own, PASS/FAIL with numbers
(Carlini et al. 2019, Tramer et al. 2020). First the model must be better than chance (clean accuracy more than
5 points above 1 / K): a model at chance passes every robustness check vacuously, so the others are not run then.
Robust accuracy falls as eps grows (2/255 ... 64/255 at the default eps 8/255: eps/4 to 8 eps, every step
doubling) and is near zero at 8 eps, and its 4 eps value is not far from zero; doubling PGD steps does not help;
Square does not beat PGD; transfer from a held draw does not beat the adaptive attack; clean accuracy is stable
across draws. A tolerance of two binomial standard errors (+0.5 pp) absorbs sampling noise. Randomized models are
scored with the adaptive worst case (expected accuracy over fresh answers). The flags every evaluation carries are
``rna_core.evaluation.flags``."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .. import attacks as A
from ..classifier import Classifier
from ..data.inputs import as_examples, first_images
from ..evaluation import evaluate
from ..evaluation.evaluate import planned_passes
from ..evaluation.flags import CHANCE_MARGIN
from ..evaluation.flags import tolerance as _tol
from ..progress import forward_bar


@dataclass
class Check:
    name: str
    passed: bool
    detail: str

    def __str__(self) -> str:
        return f"[{'PASS' if self.passed else 'FAIL'}] {self.name}: {self.detail}"


def suite_flags(clf: Classifier, dataset, eps: float = 8 / 255, steps: int = 10, eot: int = 8, queries: int = 1000,
                seed: int = 0, progress: bool = False, answers: int = 4) -> list[str]:
    """``flags`` of one evaluation with PGD, APGD-CE, Square and an unbounded DeepFool (adaptive protocol for a
    randomized model, white-box otherwise)."""
    attacks = {f"PGD-{steps}": [A.pgd(steps, eps, eps / 4)], "APGD-CE": [A.apgd("ce", 5 * steps, eps)],
               "Square": [A.square(queries, eps)], "DeepFool": [A.deepfool(50)]}
    return evaluate(clf, dataset, attacks, "both", eot, seed=seed, progress=progress, answers=answers)["flags"]


class _Evaluations:
    """The checks' evaluations of ``clf`` on ``dataset``, each with its own seed ``(seed, i)`` in call order
    (independent draws and attack numbers), and the passes they take (``planned_passes``) for the estimate."""

    def __init__(self, clf: Classifier, dataset, eot: int, answers: int, seed: int) -> None:
        self.clf, self.dataset, self.eot, self.answers = clf, dataset, eot, answers
        self.calls, self.seed = itertools.count(), seed

    def passes(self, attacks: list, protocol: str, answers: int | None = None) -> int:
        return planned_passes(self.clf, self.dataset, attacks, protocol, self.eot,
                              answers=self.answers if answers is None else answers)

    def __call__(self, attacks: list, protocol: str, key: str, answers: int | None = None) -> float:
        return evaluate(self.clf, self.dataset, attacks, protocol, self.eot, seed=(self.seed, next(self.calls)),
                        progress=False, answers=self.answers if answers is None else answers)[key]


def run_checks(clf: Classifier, dataset, eps: float = 8 / 255, steps: int = 10, eot: int = 8, trials: int = 5,
               queries: int = 1000, seed: int = 0, progress: bool = False, answers: int = 4) -> list[Check]:
    """The sweep and comparison checks of the module docstring, under one bar (an estimate first)."""
    dataset = as_examples(dataset)
    n, random = len(dataset), clf.controller.is_random
    protocol, key = ("adaptive", "worst-case/adaptive") if random else ("both", "worst-case/white-box")
    ev = _Evaluations(clf, dataset, eot, answers, seed)
    sweep = [eps * 2.0**k for k in range(-2, 4)]
    pgd, pgd2, sq = A.pgd(steps, eps, eps / 4), A.pgd(2 * steps, eps, eps / 4), A.square(queries, eps)
    total = (ev.passes([], "both") + sum(ev.passes([A.pgd(steps, e, e / 4)], protocol) for e in sweep)
             + ev.passes([pgd2], protocol) + ev.passes([sq], protocol) + trials * ev.passes([], "both", 1)
             + (ev.passes([pgd], "paper") if random else 0))
    probe = first_images(dataset, 250) if progress else None
    with forward_bar(clf, total, "sanity", progress, probe):
        clean = ev([], "both", "clean")
        chance = 1 / clf.model.num_classes
        better = clean > chance + CHANCE_MARGIN
        checks = [Check("the model is better than chance (else no robustness check means anything)", better,
                        f"clean {100 * clean:.1f}%, chance {100 * chance:.1f}%"
                        + ("" if better else ": the other checks were not run"))]
        if not better:
            return checks
        accs = [ev([A.pgd(steps, e, e / 4)], protocol, key) for e in sweep]
        text = ", ".join(f"{255 * e:.0f}/255: {100 * a:.1f}%" for e, a in zip(sweep, accs, strict=True))
        checks.append(Check("accuracy falls as eps grows and is ~0 at 8 eps", accs[-1] <= 0.05 and
                            all(b <= a + _tol(a, n) for a, b in itertools.pairwise(accs)), text))
        checks.append(Check("accuracy at 4 eps is near zero (<= 10 %)", accs[-2] <= 0.10,
                            f"{255 * sweep[-2]:.0f}/255: {100 * accs[-2]:.1f}%"))
        a1, a2 = accs[2], ev([pgd2], protocol, key)
        checks.append(Check("doubling PGD steps does not raise accuracy", a2 <= a1 + _tol(a1, n),
                            f"PGD-{steps}: {100 * a1:.1f}%, PGD-{2 * steps}: {100 * a2:.1f}%"))
        s = ev([sq], protocol, key)
        checks.append(Check("black-box (Square) does not beat white-box", s >= a1 - _tol(a1, n),
                            f"Square-{queries}: {100 * s:.1f}%, PGD-{steps}: {100 * a1:.1f}%"))
        if random:
            transfer = ev([pgd], "paper", f"PGD-{steps}/paper")
            checks.append(Check("transfer from a held draw does not beat the adaptive attack",
                                transfer >= a1 - _tol(a1, n),
                                f"transfer: {100 * transfer:.1f}%, adaptive: {100 * a1:.1f}%"))
        cleans = [ev([], "both", "clean", 1) for _ in range(trials)]
    spread = max(cleans) - min(cleans)
    checks.append(Check("clean accuracy is stable across draws", spread <= 0.05,
                        f"{trials} trials: mean {100 * np.mean(cleans):.1f}%, std {100 * np.std(cleans):.2f} pp, "
                        f"range {100 * spread:.1f} pp"))
    return checks
