"""``rna-core sanity``: the checks against gradient masking that need runs of their own, PASS/FAIL with numbers
(Carlini et al. 2019, Tramer et al. 2020), rules that hold for any data. First the model must be better than chance
(clean accuracy more than 5 points above 1 / K): a model at chance passes every robustness check vacuously, so the
others are not run then. The eps curve (eps/4, eps/2, ... doubling until an L-inf budget of at least 0.5, 128/255 at
the default 8/255) must not rise, and at a budget of 0.5 or more, where every [0, 1] image can be moved to the
same gray image, no more than chance may survive; doubling PGD steps does not help; Square (gradient-free) and
transfer from a held draw do not beat the white-box or adaptive attack; clean accuracy is stable across draws.
The accuracy at 4 eps is reported as information only ([INFO]: the rule that it be near zero was written for
CIFAR; on Fashion-MNIST the quick RNA models keep whole classes at 4 eps under every attack tried, one path
held fixed included, with no sign of masked gradients). A tolerance of two binomial
standard errors (+0.5 pp) absorbs sampling noise. Randomized models are scored with the adaptive worst case
(expected accuracy over fresh answers). The flags every evaluation carries are ``rna_core.evaluation.flags``."""

from __future__ import annotations

import itertools
import math
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
    """A check's verdict (``info``: a reading reported, never a failure)."""

    name: str
    passed: bool
    detail: str
    info: bool = False

    def __str__(self) -> str:
        return f"[{'INFO' if self.info else 'PASS' if self.passed else 'FAIL'}] {self.name}: {self.detail}"


def sweep(eps: float) -> list[float]:
    """eps/4, eps/2, eps, 2 eps, ... doubling until the first budget of at least 0.5 (any [0, 1] image can then
    be moved to the constant 0.5)."""
    k = max(2, math.ceil(math.log2(0.5 / eps)))
    return [eps * 2.0**j for j in range(-2, k + 1)]


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
    budgets = sweep(eps)
    pgd, pgd2, sq = A.pgd(steps, eps, eps / 4), A.pgd(2 * steps, eps, eps / 4), A.square(queries, eps)
    total = (ev.passes([], "both") + sum(ev.passes([A.pgd(steps, e, e / 4)], protocol) for e in budgets)
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
        accs = [ev([A.pgd(steps, e, e / 4)], protocol, key) for e in budgets]
        checks += _curve(budgets, accs, eps, chance, n)
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


def _curve(budgets: list[float], accs: list[float], eps: float, chance: float, n: int) -> list[Check]:
    """The eps curve's checks: it does not rise (within tolerance), it is at chance or below at a budget of 0.5 or
    more; the 4 eps reading as information."""
    text = ", ".join(f"{255 * e:.0f}/255: {100 * a:.1f}%" for e, a in zip(budgets, accs, strict=True))
    falls = all(b <= a + _tol(a, n) for a, b in itertools.pairwise(accs))
    big = [(e, a) for e, a in zip(budgets, accs, strict=True) if e >= 0.5]
    out = [Check("robust accuracy does not rise as eps grows", falls, text),
           Check("at eps >= 0.5 (any image can become one gray image) no more than chance survives",
                 all(a <= chance + _tol(chance, n) for _, a in big),
                 ", ".join(f"{255 * e:.0f}/255: {100 * a:.1f}% (chance {100 * chance:.1f}%)" for e, a in big))]
    at4 = next((a for e, a in zip(budgets, accs, strict=True) if math.isclose(e, 4 * eps)), None)
    if at4 is not None:
        out.append(Check("accuracy at 4 eps (a CIFAR rule of thumb: near zero there)", True,
                         f"{255 * 4 * eps:.0f}/255: {100 * at4:.1f}%", info=True))
    return out
