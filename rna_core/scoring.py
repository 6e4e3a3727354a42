"""Scoring a randomized classifier as it is deployed: every example answered by R fresh draws.

``correct`` is an (N, R) boolean matrix: example i's answer under draw r. Two accuracies follow, for two threat
models:

- **expected** accuracy, mean_i mean_r correct[i, r]: the probability that one submission of an example is
  answered correctly (an attacker who submits once);
- **persistent** accuracy, mean_i all_r correct[i, r]: the fraction of examples answered correctly every one of R
  times (an attacker who may resubmit R times and wins if any answer is wrong).

Several attacks on the same examples combine per example: the expected worst case is mean_i min_a mean_r (the
attacker picks, per example, the attack that works best in expectation, which it can estimate with its own
queries; with finite R the minimum of estimates is slightly optimistic for the attacker), the persistent worst
case is mean_i all_a all_r.

Standard errors. Examples answered together share their draw (``clusters``: the batch of each example, or one
cluster per example when each example gets its own draws). The expected accuracy's variance is the example
sampling variance var_i(s_i) / N (s_i = mean_r correct[i, r]) plus the draw variance sum_c w_c^2 var_r(a_cr) / R,
a_cr the accuracy of cluster c under draw r and w_c its share of the examples (for a worst case over attacks, the
draw variance of its weakest single attack). The persistent accuracy's SE is binomial over examples,
sqrt(q (1 - q) / N), which leaves out the correlation of examples that share draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Score:
    expected: float
    persistent: float
    expected_se: float
    persistent_se: float
    answers: int

    def to_dict(self, key: str) -> dict[str, float]:
        return {key: self.expected, f"{key}/persistent": self.persistent, f"{key}/se": self.expected_se,
                f"{key}/persistent/se": self.persistent_se}


def combine(mats: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-example (expected, persistent) of one or several attacks' (N, R) matrices: min over attacks of the
    mean over answers, and all answers of all attacks right."""
    if not mats:
        raise ValueError("no answers to score")
    expected = np.min([m.mean(1) for m in mats], axis=0)
    persistent = np.all([m.all(1) for m in mats], axis=0)
    return expected, persistent


def score(mats: list[np.ndarray], clusters: np.ndarray) -> Score:
    """Expected and persistent accuracy of (N, R) answer matrices (several: their per-example worst case), with
    standard errors; ``clusters`` (N,) names the group of examples that shared each draw."""
    expected, persistent = combine(mats)
    n, r = len(expected), mats[0].shape[1]
    example_var = expected.var(ddof=1) / n if n > 1 else 0.0
    draw_var = 0.0
    if r > 1:
        worst = mats[int(np.argmin([m.mean() for m in mats]))]
        for c in np.unique(clusters):
            rows = worst[clusters == c]
            draw_var += (len(rows) / n) ** 2 * rows.mean(0).var(ddof=1) / r
    q = persistent.mean()
    return Score(float(expected.mean()), float(q), float(np.sqrt(example_var + draw_var)),
                 float(np.sqrt(q * (1 - q) / n)), r)


def per_class(mats: list[np.ndarray], labels: np.ndarray, classes: int) -> dict[str, list]:
    """Per class c: n_c, the examples labelled c, and their expected and persistent accuracy (several matrices:
    the per-example worst case, ``combine``), mean_{i: y_i = c} of each; None for a class the data does not hold.
    Where a model's robustness lives: a few classes kept whole, or every class a little."""
    expected, persistent = combine(mats)
    labels = np.asarray(labels, np.int64)
    if labels.shape != expected.shape:
        raise ValueError(f"{len(labels)} labels for {len(expected)} answered examples")
    counts = np.bincount(labels, minlength=classes)

    def mean(v: np.ndarray) -> list[float | None]:
        sums = np.bincount(labels, weights=v.astype(np.float64), minlength=classes)
        return [float(s / c) if c else None for s, c in zip(sums, counts, strict=True)]

    return {"n": counts.tolist(), "expected": mean(expected), "persistent": mean(persistent)}
