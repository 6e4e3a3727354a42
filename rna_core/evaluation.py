"""Evaluation of (possibly randomized) classifiers under attack, every number labelled with its protocol.

For a model whose path space is random:
- ``paper`` (the RNA and CTRW papers' protocol): attack one drawn path p_a held fixed for every step, answer
  with a fresh draw. It measures path-to-path transfer and is kept to compare with the published tables;
- ``adaptive`` (the default report): attacks that know the randomness: ``fixed-path`` (the attack of p_a
  answered by p_a itself), ``eot`` (every gradient averaged over K fresh draws, answered by a fresh draw;
  gradient-free attacks query fresh draws) and ``adaptive``, the per-example worst case of the two.
A deterministic model has one protocol, ``white-box``. Clean accuracy uses one fresh draw per batch.
``worst-case/<protocol>`` counts an example robust only if it survives every attack run under that
protocol; attacks in one column (AutoAttack's members) are also combined per example. Minimum-norm attacks
(CW, DeepFool) break an example that was classified correctly only within their L2 budget ``eps`` and
report the median L2 distortion of the examples they fooled (already misclassified examples, left
unperturbed, are not counted).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .attacks import AttackSpec
from .backend import Backend
from .classifier import Classifier
from .data.loader import batches, num_batches

PROTOCOLS = ("paper", "adaptive", "both")


def craft(clf: Classifier, x: np.ndarray, y: np.ndarray, spec: AttackSpec, rng: np.random.Generator):
    """Adversarial examples (backend tensor) for ``spec``, random numbers from ``rng``; the model's mode and path
    policy are the caller's."""
    be = clf.backend
    return be.attack(clf.model, be.tensor(x), be.tensor(y), spec, rng)


def _columns(attacks) -> dict[str, list[AttackSpec]]:
    if isinstance(attacks, dict):
        return {k: list(v) for k, v in attacks.items()}
    return {spec.label: [spec] for spec in attacks}


class _Scorer:
    """Robustness of one batch: correct prediction, or (minimum-norm attacks) a perturbation beyond eps."""

    def __init__(self, clf: Classifier, x: np.ndarray, y: np.ndarray) -> None:
        self.clf, self.x, self.y = clf, x, y
        self.clean = clf.backend.numpy(clf.backend.logits(clf.model, clf.backend.tensor(x))).argmax(1) == y

    def __call__(self, adv, spec: AttackSpec) -> tuple[np.ndarray, np.ndarray]:
        be = self.clf.backend
        correct = be.numpy(be.logits(self.clf.model, adv)).argmax(1) == self.y
        l2 = np.linalg.norm((be.numpy(adv) - self.x).reshape(len(self.x), -1), axis=1)
        robust = self.clean & (correct | (l2 > spec.eps)) if spec.minimum_norm else correct
        return robust, np.where(correct | (l2 == 0), np.nan, l2)


def evaluate(clf: Classifier, dataset, attacks: Sequence[AttackSpec] | dict[str, list[AttackSpec]] = (),
             protocol: str = "both", eot: int = 8, rng: np.random.Generator | None = None, batch_size: int = 250,
             progress: bool = True) -> dict:
    """Clean accuracy (a fresh draw per batch) and robust accuracy (fractions in [0, 1]) under ``protocol``
    (``paper``, ``adaptive`` or ``both``) for every attack column; ``eot`` is K for the adaptive EOT attacks."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    rng = rng or np.random.default_rng(0)
    be, ctrl = clf.backend, clf.controller
    random = ctrl.is_random
    columns = _columns(attacks)
    be.set_training(clf.model, False)
    hits: dict[str, list[np.ndarray]] = {"clean": []}
    dists: dict[str, list[np.ndarray]] = {}
    bar = tqdm(batches(dataset, batch_size), total=num_batches(len(dataset), batch_size, False),
               desc="evaluate", disable=not progress, leave=False)
    for x, y in bar:
        score = _Scorer(clf, clf.check_images(x), y)
        hits["clean"].append(score.clean)
        worst: dict[str, np.ndarray] = {}
        for col, specs in columns.items():
            got: dict[str, np.ndarray] = {}

            def add(proto: str, robust: np.ndarray, l2: np.ndarray, spec: AttackSpec, col=col, got=got) -> None:
                got[proto] = got.get(proto, np.ones(len(robust), bool)) & robust
                if spec.minimum_norm:
                    dists.setdefault(f"{col}/median-l2/{proto}", []).append(l2)

            for spec in specs:
                if not random:
                    add("white-box", *score(craft(clf, score.x, y, spec, rng), spec), spec)
                    continue
                with ctrl.frozen():
                    adv = craft(clf, score.x, y, spec, rng)
                    same = score(adv, spec)
                if protocol in ("paper", "both"):
                    add("paper", *score(adv, spec), spec)
                if protocol in ("adaptive", "both"):
                    add("fixed-path", *same, spec)
                    eot_spec = spec if spec.gradient_free else spec.replace(eot=eot)
                    add("eot", *score(craft(clf, score.x, y, eot_spec, rng), spec), spec)
            if "eot" in got:
                got["adaptive"] = got["fixed-path"] & got["eot"]
            for proto, robust in got.items():
                hits.setdefault(f"{col}/{proto}", []).append(robust)
                group = "adaptive" if proto in ("fixed-path", "eot") else proto
                worst[group] = worst.get(group, np.ones(len(y), bool)) & robust
        for proto, robust in worst.items():
            hits.setdefault(f"worst-case/{proto}", []).append(robust)
    out = {"n": len(dataset), "protocol": protocol if random else "white-box", "eot": eot if random else 1,
           **{k: float(np.concatenate(v).mean()) for k, v in hits.items()}}
    for k, v in dists.items():
        d = np.concatenate(v)
        out[k] = float(np.nanmedian(d)) if np.isfinite(d).any() else None
    return out


def trials(clf: Classifier, dataset, attacks: Sequence[AttackSpec] | dict[str, list[AttackSpec]], n: int = 10,
           protocol: str = "paper", eot: int = 8, seed: int = 0, batch_size: int = 250,
           progress: bool = True) -> dict:
    """Repeat the evaluation ``n`` times with fresh draws (the RNA supplement's stability table): per metric the
    list over trials and its mean, std, min and max."""
    runs = [evaluate(clf, dataset, attacks, protocol, eot, np.random.default_rng([seed, t]), batch_size, progress)
            for t in tqdm(range(n), desc="trials", disable=not progress, leave=False)]
    keys = [k for k, v in runs[0].items() if isinstance(v, float)]
    return {k: {"trials": [r[k] for r in runs], "mean": float(np.mean([r[k] for r in runs])),
                "std": float(np.std([r[k] for r in runs])), "min": float(min(r[k] for r in runs)),
                "max": float(max(r[k] for r in runs))} for k in keys}


def evaluate_checkpoint(checkpoint: str | Path, backend: str | Backend = "torch",
                        attacks: Sequence[AttackSpec] | dict[str, list[AttackSpec]] | None = None,
                        samples: int | None = None, seed: int = 0, progress: bool = True, protocol: str = "both",
                        eot: int = 8) -> dict:
    """Load a checkpoint on ``backend`` and evaluate it on its recipe's test split (``samples`` examples; default
    the recipe's ``eval_samples``) with ``attacks`` (default the recipe's ``eval_attack``)."""
    from .runs import load_run

    run = load_run(checkpoint, backend, seed, samples)
    attacks = run.recipe.eval_attacks if attacks is None else attacks
    return evaluate(run.classifier, run.test, attacks, protocol, eot, run.rng, run.recipe.eval_batch_size, progress)
