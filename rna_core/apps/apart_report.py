"""APART's experiments on BN statistics (Sec. 4.4 and 4.5 of the APART paper); each writes JSON and a PNG.

- ``statistics_attack`` (Fig. 1): APART's first step on one training batch gives d = eps sign(g_theta) for every
  BN layer, the other parameters unchanged; the accuracy over the training set is then measured with every BN
  layer running Eq. 3 with d on batch statistics of ``batch_size`` examples split into n interleaved groups
  (the quantity APART's second pass sees), for several eps and n, against random perturbations of the same
  radius: U[-eps, eps]^d and U{-eps, eps}^d (one group), and against no perturbation.
- ``statistics_shift`` (Fig. 2): trained models in inference mode with their estimated (running) statistics
  shifted, mu <- (1 + eps v) mu or sigma <- (1 + eps v) sigma, v in {-1, 1}^C per layer drawn once from ``seed``
  and shared by every model; test accuracy per eps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..apart import BNPerturbation, adversarial_delta, random_delta, shift_statistics
from ..backend import DELTA
from ..classifier import Classifier
from ..data.loader import batches
from ..losses import CE_MEAN
from ..progress import forward_bar
from .plots import pyplot, save


def _train_mode_accuracy(clf: Classifier, dataset, bn: BNPerturbation, batch_size: int) -> float:
    """Accuracy with batch statistics (training mode, running statistics untouched) under ``bn``."""
    hits = []
    for x, y in batches(dataset, batch_size, drop_last=True):
        hits.append(clf.logits(x, bn).argmax(1) == y)
    return float(np.concatenate(hits).mean())


def statistics_attack(clf: Classifier, train_data, radii: list[float], groups: list[int], out_dir: str | Path,
                      batch_size: int = 128, seed: int = 0, progress: bool = False) -> dict:
    """Fig. 1 on ``clf`` (held to one draw of its path for the whole experiment), under one bar."""
    if not clf.bn_layout.names:
        raise ValueError("the BN-statistics attack needs a model with BN layers")
    be, size = clf.backend, clf.bn_layout.size
    rng = np.random.default_rng(seed)
    x, y = next(batches(train_data, batch_size, rng, shuffle=True, drop_last=True))
    rows = []
    total = 1 + len(train_data) // batch_size * (len(groups) + len(radii) * (len(groups) + 2))
    with forward_bar(clf, total, "apart-report Fig. 1", progress, x), clf.controller.frozen():
        clf.model.set_train(True)
        try:
            yb = be.ops.tensor(y)
            draw = clf.controller.next_draw().perturbed(BNPerturbation(np.zeros(size), 1, False))
            g_delta = be.ops.numpy(be.value_and_grad(clf.model, CE_MEAN, be.ops.tensor(x), yb, yb, draw,
                                                     (DELTA,)).delta)
            for n in groups:
                acc = _train_mode_accuracy(clf, train_data, BNPerturbation(np.zeros(size), n, False), batch_size)
                rows.append({"kind": "none", "groups": n, "eps": 0.0, "accuracy": acc})
            for eps in radii:
                for n in groups:
                    bn = BNPerturbation(adversarial_delta(g_delta, eps), n, False)
                    rows.append({"kind": "apart", "groups": n, "eps": eps,
                                 "accuracy": _train_mode_accuracy(clf, train_data, bn, batch_size)})
                for kind in ("uniform", "binary"):
                    bn = BNPerturbation(random_delta(kind, size, eps, rng), 1, False)
                    rows.append({"kind": kind, "groups": 1, "eps": eps,
                                 "accuracy": _train_mode_accuracy(clf, train_data, bn, batch_size)})
        finally:
            clf.model.set_train(False)
    result = {"report": "statistics_attack", "batch_size": batch_size, "examples": len(train_data), "seed": seed,
              "rows": rows}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, n in [("apart", n) for n in groups] + [("uniform", 1), ("binary", 1)]:
        pts = [(0.0, r["accuracy"]) for r in rows if r["kind"] == "none" and r["groups"] == n]
        pts += [(r["eps"], r["accuracy"]) for r in rows if r["kind"] == kind and r["groups"] == n]
        ax.plot(*zip(*pts, strict=True), marker="o", ls="-" if kind == "apart" else "--",
                label=f"APART, n = {n}" if kind == "apart" else f"random {kind}")
    ax.set_xlabel("perturbation radius eps")
    ax.set_ylabel("training accuracy")
    ax.set_title("attacks on BN statistics (APART Fig. 1)")
    ax.legend()
    return save(result, fig, out_dir, "statistics_attack")


def statistics_shift(models: dict[str, Classifier], test_data, radii: list[float], out_dir: str | Path,
                     seed: int = 0, batch_size: int = 250, progress: bool = False) -> dict:
    """Fig. 2 for the models ``{label: classifier}`` (same architecture); their states are restored afterwards."""
    rows = []
    total = len(models) * 2 * (1 + len(radii)) * -(-len(test_data) // batch_size)
    probe = next(batches(test_data, batch_size))[0]
    with forward_bar(list(models.values()), total, "apart-report Fig. 2", progress, probe):
        for label, clf in models.items():
            rows += _shifted_accuracies(label, clf, test_data, radii, seed, batch_size)
    result = {"report": "statistics_shift", "seed": seed, "examples": len(test_data), "rows": rows}

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, which in zip(axes, ("mean", "std"), strict=True):
        for label in models:
            pts = [(r["eps"], r["accuracy"]) for r in rows if r["model"] == label and r["statistic"] == which]
            ax.plot(*zip(*pts, strict=True), marker="o", label=label)
        stat = "mu" if which == "mean" else "sigma"
        ax.set_xlabel(f"eps ({stat} <- (1 + eps v) {stat})")
        ax.set_title(f"shifted BN {which} (APART Fig. 2)")
    axes[0].set_ylabel("test accuracy")
    axes[0].legend()
    return save(result, fig, out_dir, "statistics_shift")


def _shifted_accuracies(label: str, clf: Classifier, test_data, radii: list[float], seed: int,
                        batch_size: int) -> list[dict]:
    """Test accuracy of one model with its running mean, then std, shifted by each eps (0 first)."""
    be, layout = clf.backend, clf.bn_layout
    rng = np.random.default_rng(seed)
    v = {name: rng.choice((-1.0, 1.0), c) for name, c in zip(layout.names, layout.channels, strict=True)}
    state, rows = be.get_state(clf.model), []
    clf.model.set_train(False)
    try:
        with clf.controller.frozen():
            for which in ("mean", "std"):
                for eps in [0.0, *radii]:
                    be.set_state(clf.model, shift_statistics(state, layout, which, eps, v))
                    hits = [clf.logits(x).argmax(1) == y for x, y in batches(test_data, batch_size)]
                    rows.append({"model": label, "statistic": which, "eps": eps,
                                 "accuracy": float(np.concatenate(hits).mean())})
    finally:
        be.set_state(clf.model, state)
    return rows
