"""CTRW reports on trained runs (Zhang et al. 2023, Table 6 and Fig. 3a/3b); each writes JSON and a PNG.

- ``positive_samples`` (Table 6): per run, the positive samples (PS) among ``samples`` pairs of independent
  draws W = mu + sigma delta of its learned random weight, PS meaning cos(W[1], W[2]) <= eps_r, their ratio,
  the smallest cosine, sum(sigma) against [A, B], F(alpha), and the run's test accuracies;
- ``sigma_distribution`` (Fig. 3a): the learned sigma entries of each run, as box plots;
- ``accuracy_vs_sigma`` (Fig. 3b): one trained model with its sigma rescaled to several sums, natural and
  robust accuracy at each (the bounds [A, B] shaded).

eps_r: Lemma 1 takes eps_r -> 0+; the default 0 is that limit (the paper does not print its value; its Table 6
ratios below 0.5 fit it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..attacks import AttackSpec
from ..bounds import normal_cdf, positive_sample_ratio
from ..checkpoints import load_checkpoint
from ..classifier import Classifier, graph_from_arch
from ..data.inputs import as_examples, first_images
from ..evaluation import evaluate
from ..evaluation.evaluate import planned_passes
from ..models.ctrw import random_weights
from ..progress import forward_bar
from ..recipes import Recipe, saved_recipe
from .plots import pyplot, save


def _learned(run: str | Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], Recipe]:
    """{random weight: (mu, sigma)} read from a run's checkpoint (numpy, no backend needed), and its recipe."""
    state, _, meta = load_checkpoint(str(run))
    names = list(random_weights(graph_from_arch(meta["arch"])))
    if not names:
        raise ValueError(f"{run}: this report needs a model with CTRW random weights")
    return {n: (state[f"{n}.mu"], state[f"{n}.sigma"]) for n in names}, saved_recipe(meta, run)


def _metrics(run: Path) -> dict:
    path = (run if run.is_dir() else run.parent) / "metrics.json"
    return json.loads(path.read_text())["test"] if path.is_file() else {}


def positive_samples(runs: dict[str, str | Path], out_dir: str | Path, eps_r: float = 0.0, alpha: float = -1e-3,
                     samples: int = 100_000, seed: int = 0) -> dict:
    """Table 6 for the runs ``{label: run_dir}`` (e.g. with and without constraint)."""
    rows = []
    for label, run in runs.items():
        weights, recipe = _learned(run)
        for name, (mu, sigma) in weights.items():
            ps = positive_sample_ratio(mu, sigma, eps_r, samples, np.random.default_rng(seed))
            rows.append({"run": label, "weight": name, "constraint": recipe.sigma_constraint, **ps,
                         "sum_sigma": float(sigma.sum(dtype=np.float64)), "A": recipe.sigma_lower,
                         "B": recipe.sigma_upper, "test": _metrics(Path(run))})
    result = {"report": "positive_samples", "eps_r": eps_r, "alpha": alpha, "F_alpha": normal_cdf(alpha),
              "samples": samples, "rows": rows}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = [f"{r['run']}\n{r['weight']}" for r in rows]
    ax.bar(labels, [r["ratio"] for r in rows])
    ax.axhline(normal_cdf(alpha), color="tab:orange", ls="--", label=f"F(alpha), alpha = {alpha:g}")
    ax.set_ylabel(f"P(cos(W[1], W[2]) <= {eps_r:g})")
    ax.set_title("positive samples (Table 6)")
    ax.legend()
    return save(result, fig, out_dir, "positive_samples")


def sigma_distribution(runs: dict[str, str | Path], out_dir: str | Path) -> dict:
    """Fig. 3a: quartiles and range of each run's learned sigma entries."""
    rows, data = [], []
    for label, run in runs.items():
        for name, (_, sigma) in _learned(run)[0].items():
            s = sigma.ravel().astype(np.float64)
            data.append(s)
            rows.append({"run": label, "weight": name, "sum": float(s.sum()), "mean": float(s.mean()),
                         "quantiles": {str(q): float(np.quantile(s, q)) for q in (0, 0.25, 0.5, 0.75, 1)}})
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(rows) + 1), [f"{r['run']}\n{r['weight']}" for r in rows])
    ax.set_ylabel("learned sigma (per entry)")
    ax.set_title("distribution of sigma (Fig. 3a)")
    return save({"report": "sigma_distribution", "rows": rows}, fig, out_dir, "sigma_distribution")


def default_sums(clf: Classifier) -> list[float]:
    """Fig. 3b's totals: 1 and 0.5, 1, ..., 6 times the number of entries of the (first) random weight."""
    size = next(iter(random_weights(clf.graph).values())).size
    return [1.0] + [k * size / 2 for k in range(1, 13)]


def accuracy_vs_sigma(clf: Classifier, dataset, attack: AttackSpec, sums: list[float] | None, out_dir: str | Path,
                      bounds: tuple[float, float] | None = None, protocol: str = "paper", eot: int = 8,
                      seed: int = 0, progress: bool = False) -> dict:
    """Fig. 3b: sigma rescaled to each total in ``sums`` (default ``default_sums``; its learned shape kept), natural
    and ``attack`` accuracy under ``protocol``; the learned sigma is restored afterwards."""
    sums = default_sums(clf) if sums is None else sums
    learned = clf.sigmas()
    rows = []
    passes = len(sums) * planned_passes(clf, dataset, [attack], protocol, eot)
    try:
        with forward_bar(clf, passes, "ctrw-report Fig. 3b", progress, first_images(as_examples(dataset), 250)):
            for total in sums:
                clf.set_sigmas({k: v * (total / max(float(v.sum()), 1e-12)) for k, v in learned.items()})
                res = evaluate(clf, dataset, [attack], protocol, eot, seed=seed, progress=False)
                robust = res[f"{attack.label}/{'adaptive' if protocol == 'both' else protocol}"]
                rows.append({"sum_sigma": total, "natural": res["clean"], "robust": robust})
    finally:
        clf.set_sigmas(learned)
    result = {"report": "accuracy_vs_sigma", "attack": attack.to_dict(), "protocol": protocol, "bounds": bounds,
              "learned_sum": {k: float(v.sum()) for k, v in learned.items()}, "rows": rows}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r["sum_sigma"] for r in rows]
    ax.plot(xs, [100 * r["natural"] for r in rows], marker="o", label="natural")
    ax.plot(xs, [100 * r["robust"] for r in rows], marker="s", label=f"{attack.label} ({protocol})")
    if bounds:
        ax.axvspan(*bounds, color="tab:orange", alpha=0.2, label="[A, B]")
    ax.set_xlabel("sum(sigma)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy against sum(sigma) (Fig. 3b)")
    ax.legend()
    return save(result, fig, out_dir, "accuracy_vs_sigma")
