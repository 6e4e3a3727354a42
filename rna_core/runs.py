"""Trained runs on disk: a checkpoint rebuilt on a backend together with its recipe and the test split it was
evaluated on (``load_run``), its evaluation (``evaluate_checkpoint``), and the ``LABEL=RUN`` arguments that name
several runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backend import Backend
from .classifier import Classifier, load_classifier
from .data import load_dataset
from .evaluation import evaluate
from .evaluation.evaluate import Attacks
from .recipes import Recipe, saved_recipe


@dataclass
class Run:
    """A loaded checkpoint: its classifier (paths drawn from a Generator seeded by ``seed``), its recipe and
    metadata, its recipe's test split (``samples`` examples, a stratified prefix) and a Generator for the
    evaluation's random numbers (independent of the path stream)."""

    classifier: Classifier
    recipe: Recipe
    meta: dict
    test: Any
    rng: np.random.Generator


def load_run(checkpoint: str | Path, backend: str | Backend = "torch", seed: int = 0,
             samples: int | None = None) -> Run:
    """Rebuild the checkpoint (run directory, .json sidecar or .safetensors file) on ``backend``."""
    path_seed, eval_seed = np.random.SeedSequence(seed).spawn(2)
    clf, meta = load_classifier(str(checkpoint), backend, np.random.default_rng(path_seed))
    recipe = saved_recipe(meta, checkpoint)
    test = load_dataset(recipe.dataset, "test", recipe.data_dir, recipe.image_size)
    test = test.subset(samples if samples is not None else recipe.eval_samples)
    return Run(clf, recipe, meta, test, np.random.default_rng(eval_seed))


def evaluate_checkpoint(checkpoint: str | Path, backend: str | Backend = "torch", attacks: Attacks | None = None,
                        samples: int | None = None, seed: int = 0, progress: bool = True, protocol: str = "both",
                        eot: int = 8, answers: int = 10, answer: str = "per-batch") -> dict:
    """Load a checkpoint on ``backend`` and evaluate it on its recipe's test split (``samples`` examples; default
    the recipe's ``eval_samples``) with ``attacks`` (default the recipe's ``eval_attack``)."""
    run = load_run(checkpoint, backend, seed, samples)
    attacks = run.recipe.eval_attacks if attacks is None else attacks
    return evaluate(run.classifier, run.test, attacks, protocol, eot, run.rng, run.recipe.eval_batch_size, progress,
                    answers, answer)


def parse_labelled(items: list[str]) -> dict[str, str]:
    """``["LABEL=RUN", ...]`` -> {label: run}; a malformed or repeated label is a ValueError naming it."""
    out: dict[str, str] = {}
    for item in items:
        label, sep, run = item.partition("=")
        if not sep or not label.strip() or not run.strip():
            raise ValueError(f"expected LABEL=RUN, got {item!r}")
        if label in out:
            raise ValueError(f"label {label!r} is given twice")
        out[label.strip()] = run.strip()
    return out
