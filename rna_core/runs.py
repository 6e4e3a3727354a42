"""Trained runs on disk: a checkpoint rebuilt on a backend together with its recipe and the test split it was
evaluated on (``load_run``), its evaluation (``evaluate_checkpoint``), and the ``LABEL=RUN`` arguments that name
several runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backend import Backend
from .classifier import Classifier, load_classifier
from .data import load_dataset
from .evaluation import evaluate
from .evaluation.evaluate import Attacks
from .recipes import Recipe, saved_recipe


@dataclass
class Run:
    """A loaded checkpoint: its classifier (paths drawn from a Generator seeded by ``seed``), its recipe and
    metadata, its recipe's test split (``samples`` examples, a stratified prefix) and the seed its evaluations
    take."""

    classifier: Classifier
    recipe: Recipe
    meta: dict
    test: Any
    seed: int


def load_run(checkpoint: str | Path, backend: str | Backend = "torch", seed: int = 0,
             samples: int | None = None) -> Run:
    """Rebuild the checkpoint (run directory, .json sidecar or .safetensors file) on ``backend``."""
    clf = load_classifier(checkpoint, backend, seed=seed)
    meta = clf.meta
    recipe = saved_recipe(meta, checkpoint)
    test = load_dataset(recipe.dataset, "test", recipe.data_dir, recipe.image_size)
    test = test.subset(samples if samples is not None else recipe.eval_samples)
    return Run(clf, recipe, meta, test, seed)


def evaluate_checkpoint(checkpoint: str | Path, backend: str | Backend = "torch", attacks: Attacks | None = None,
                        samples: int | None = None, seed: int | None = None, progress: bool = True,
                        protocol: str | None = None, eot: int | None = None, answers: int | None = None,
                        answer: str | None = None, transfer_draws: int | None = None,
                        save_dir: str | Path | None = None) -> dict:
    """Load a checkpoint on ``backend`` and evaluate it on its recipe's test split (``samples`` examples). Every
    setting left None is the recipe's (``eval_samples``, ``eval_attack``, ``eval_protocol``, ``eval_eot``,
    ``eval_answers``, ``eval_answer``, ``eval_transfer_draws``, and ``seed``), the ones the end-of-training
    evaluation took: by default this gives its numbers (``metrics.json``) again. ``save_dir`` keeps each finished
    attack there and resumes a killed evaluation (``evaluate``)."""
    run = load_run(checkpoint, backend, 0, samples)
    r = run.recipe
    return evaluate(run.classifier, run.test, r.eval_attacks if attacks is None else attacks,
                    r.eval_protocol if protocol is None else protocol, r.eval_eot if eot is None else eot,
                    seed=r.seed if seed is None else seed, batch_size=r.eval_batch_size, progress=progress,
                    answers=r.eval_answers if answers is None else answers,
                    answer=r.eval_answer if answer is None else answer,
                    transfer_draws=r.eval_transfer_draws if transfer_draws is None else transfer_draws,
                    save_dir=save_dir)


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
