"""Evaluation of (possibly randomized) classifiers under attack, with the protocol named.

For a model with a random path space, one attack on a drawn path p_a is answered twice:
- ``paper``: by a fresh path, as the RNA and CTRW papers' code does (the attacker sees one draw, the
  defender answers with another); this measures path-to-path transfer;
- ``fixed-path``: by p_a itself, an attacker who knows the randomness of that query;
and ``worst-case`` counts an example robust only if it survives every protocol run. A deterministic
model has a single ``white-box`` protocol.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from .attacks import AttackSpec
from .classifier import Classifier
from .data.loader import batches, num_batches


def craft(clf: Classifier, x: np.ndarray, y: np.ndarray, spec: AttackSpec, rng: np.random.Generator):
    """Adversarial examples (backend tensor) for ``spec`` from a random start drawn from ``rng``; the model's
    mode and path policy are the caller's. Restarts keep, per example, the first one that fools the model."""
    be = clf.backend
    xb, yb = be.tensor(x), be.tensor(y)
    best = None
    for _ in range(spec.restarts):
        adv = be.attack(clf.model, xb, yb, spec, spec.random_start_for(x, rng))
        if spec.restarts == 1:
            return adv
        adv_np = be.numpy(adv)
        fooled = be.numpy(be.logits(clf.model, adv)).argmax(1) != y
        if best is None:
            best, done = adv_np, fooled
        else:
            take = fooled & ~done
            best[take] = adv_np[take]
            done |= fooled
    return be.tensor(best)


def _correct(clf: Classifier, xb, y: np.ndarray) -> np.ndarray:
    return clf.backend.numpy(clf.backend.logits(clf.model, xb)).argmax(1) == y


def evaluate(clf: Classifier, dataset, attacks: Sequence[AttackSpec] = (), rng: np.random.Generator | None = None,
             batch_size: int = 250, progress: bool = True) -> dict:
    """Clean accuracy (a fresh path per batch) and robust accuracy per attack and protocol, in [0, 1]."""
    rng = rng or np.random.default_rng(0)
    be, ctrl = clf.backend, clf.controller
    random = ctrl.space.is_random
    be.set_training(clf.model, False)
    hits: dict[str, list[np.ndarray]] = {"clean": []}
    bar = tqdm(batches(dataset, batch_size), total=num_batches(len(dataset), batch_size, False),
               desc="evaluate", disable=not progress, leave=False)
    for x, y in bar:
        hits["clean"].append(_correct(clf, be.tensor(clf.check_images(x)), y))
        for spec in attacks:
            with ctrl.frozen():
                adv = craft(clf, x, y, spec, rng)
                same = _correct(clf, adv, y)
            if random:
                fresh = _correct(clf, adv, y)
                hits.setdefault(f"{spec.label}/paper", []).append(fresh)
                hits.setdefault(f"{spec.label}/fixed-path", []).append(same)
                hits.setdefault(f"{spec.label}/worst-case", []).append(fresh & same)
            else:
                hits.setdefault(f"{spec.label}/white-box", []).append(same)
    return {"n": len(dataset), **{k: float(np.concatenate(v).mean()) for k, v in hits.items()}}
