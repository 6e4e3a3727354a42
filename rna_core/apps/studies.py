"""Transferability studies of the RNA paper on a trained model; each writes JSON and a PNG.

- ``transfer_matrix`` (Fig. 1 c/d): PGD crafted on the path that uses candidate i everywhere, accuracy on the
  path that uses candidate j everywhere;
- ``path_difference`` (Fig. 5 c): accuracy when the attack path p and the answering path q differ in d layers,
  over random pairs (mean, min, max per d);
- ``gradient_similarity`` (Fig. 3): per-example cosine similarity of input gradients between two paths
  (random pairs, and every pair of single-candidate paths), as histograms.

Each runs on one batch of ``n`` test images under one bar (``progress``: an estimate first).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..attacks import AttackSpec
from ..classifier import Classifier
from ..evaluation import craft
from ..evaluation.threats import cost
from ..progress import forward_bar
from .plots import pyplot, save


def _accuracy(clf: Classifier, adv, y: np.ndarray) -> float:
    return float((clf.logits(adv).argmax(1) == y).mean())


def _paths(clf: Classifier, study: str) -> None:
    """The studies compare normalization paths: a model with one path (or none rna-core draws) is an error."""
    if clf.space.num_layers == 0 or int(clf.space.counts.max()) < 2:
        raise ValueError(f"the {study} study compares normalization paths, and this model has a single one (no "
                         "layer with several candidates): study a model trained with several norms, e.g. bn+in")


def _names(clf: Classifier) -> list[str]:
    first = clf.space.candidates[0]
    if any(c != first for c in clf.space.candidates):
        raise ValueError("this study needs the same candidate list in every layer")
    return [s.name for s in first]


def _batch(dataset, n: int):
    x, y = dataset.batch(np.arange(min(n, len(dataset))))
    return x.astype(np.float32) / 255.0, y


def transfer_matrix(clf: Classifier, dataset, attack: AttackSpec, out_dir: str | Path, n: int = 500,
                    seed: int = 0, progress: bool = False) -> dict:
    _paths(clf, "transfer")
    rng = np.random.default_rng(seed)
    names = _names(clf)
    x, y = _batch(dataset, n)
    clf.model.set_train(False)
    matrix = np.zeros((len(names), len(names)))
    k = len(names)
    with forward_bar(clf, k * cost(attack) + k * k, "study transfer", progress, x):
        for i in range(k):
            with clf.controller.fixed(clf.space.fixed(i)):
                adv = craft(clf, x, y, attack, rng)
            for j in range(k):
                with clf.controller.fixed(clf.space.fixed(j)):
                    matrix[i, j] = _accuracy(clf, adv, y)
    result = {"study": "transfer_matrix", "attack": attack.to_dict(), "n": len(y), "sources": names,
              "targets": names, "accuracy": matrix.tolist()}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 1.2 * len(names) + 1.5))
    im = ax.imshow(100 * matrix, cmap="viridis", vmin=0, vmax=100)
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, f"{100 * v:.1f}", ha="center", va="center", color="w" if v < 0.6 else "k")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("answering path (all layers)")
    ax.set_ylabel("attacked path (all layers)")
    ax.set_title(f"{attack.label} accuracy (%) across normalizations")
    fig.colorbar(im)
    return save(result, fig, out_dir, "transfer_matrix")


def _perturb_path(clf: Classifier, p: np.ndarray, d: int, rng: np.random.Generator) -> np.ndarray:
    q = p.copy()
    counts = clf.space.counts
    layers = rng.choice(np.flatnonzero(counts > 1), size=d, replace=False)
    for layer in layers:
        q[layer] = (q[layer] + rng.integers(1, counts[layer])) % counts[layer]
    return q


def path_difference(clf: Classifier, dataset, attack: AttackSpec, out_dir: str | Path, n: int = 500,
                    pairs: int = 10, distances: list[int] | None = None, seed: int = 0,
                    progress: bool = False) -> dict:
    _paths(clf, "path-difference")
    if not clf.space.layer_free:
        raise ValueError("path difference needs a layer-free path space")
    rng = np.random.default_rng(seed)
    x, y = _batch(dataset, n)
    clf.model.set_train(False)
    random_layers = int((clf.space.counts > 1).sum())
    distances = distances or sorted({0, *range(0, random_layers + 1, max(1, random_layers // 10)), random_layers})
    rows = []
    with forward_bar(clf, len(distances) * pairs * (cost(attack) + 1), "study path-difference", progress, x):
        for d in distances:
            accs = []
            for _ in range(pairs):
                p = clf.controller.draw().path
                q = _perturb_path(clf, p, d, rng)
                with clf.controller.fixed(p):
                    adv = craft(clf, x, y, attack, rng)
                with clf.controller.fixed(q):
                    accs.append(_accuracy(clf, adv, y))
            rows.append({"distance": d, "mean": float(np.mean(accs)), "min": float(min(accs)),
                         "max": float(max(accs)), "accuracy": accs})
    result = {"study": "path_difference", "attack": attack.to_dict(), "n": len(y), "pairs": pairs, "rows": rows}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ds = [r["distance"] for r in rows]
    ax.plot(ds, [100 * r["mean"] for r in rows], marker="o")
    ax.fill_between(ds, [100 * r["min"] for r in rows], [100 * r["max"] for r in rows], alpha=0.3)
    ax.set_xlabel("path difference (layers whose normalization differs)")
    ax.set_ylabel(f"{attack.label} accuracy (%)")
    ax.set_title("transfer between paths")
    return save(result, fig, out_dir, "path_difference")


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def gradient_similarity(clf: Classifier, dataset, out_dir: str | Path, n: int = 500, pairs: int = 10,
                        seed: int = 0, progress: bool = False) -> dict:
    _paths(clf, "gradients")
    x, y = _batch(dataset, n)
    ops = clf.backend.ops
    clf.model.set_train(False)
    xb, yb = ops.tensor(x), ops.tensor(y)

    def grad(path: np.ndarray) -> np.ndarray:
        with clf.controller.fixed(path):
            return clf.input_gradient(xb, yb)

    groups: dict[str, list[float]] = {}
    names = _names(clf)
    with forward_bar(clf, len(names) + 2 * pairs, "study gradients", progress, x):
        singles = [grad(clf.space.fixed(i)) for i in range(len(names))]
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                groups[f"{names[i]} vs {names[j]}"] = _cosine(singles[i], singles[j]).tolist()
        if clf.controller.is_random:
            groups["random path pairs"] = np.concatenate(
                [_cosine(grad(clf.controller.draw()), grad(clf.controller.draw())) for _ in range(pairs)]).tolist()
    result = {"study": "gradient_similarity", "n": len(y), "cosine": groups,
              "median": {k: float(np.median(v)) for k, v in groups.items()}}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in groups.items():
        ax.hist(values, bins=40, range=(-1, 1), alpha=0.5, label=label)
    ax.set_xlabel("cosine similarity of input gradients")
    ax.set_ylabel("examples")
    ax.legend()
    return save(result, fig, out_dir, "gradient_similarity")
