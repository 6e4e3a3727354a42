"""How an evaluation answers: every example, clean or adversarial, by R fresh draws of the model's randomness.

``Batch`` holds one batch and answers images with R fresh draws (one per answer for the whole batch, or per
example); ``submitted`` is what an attacker submits (a minimum-norm attack's output beyond its budget is replaced
by the clean image); ``craft`` / ``attack_checked`` make adversarial examples on the model's current policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from ..attacks import AttackSpec, attack
from ..classifier import Classifier
from ..losses import cross_entropy_np


def craft(clf: Classifier, x: np.ndarray, y: np.ndarray, spec: AttackSpec, rng: np.random.Generator):
    """Adversarial examples (backend tensor) for ``spec``, random numbers from ``rng``; the model's mode and path
    policy are the caller's. Images and labels are checked first (shape, range, finite, class range)."""
    x = clf.check_images(x)
    return attack_checked(clf, x, clf.check_labels(y, len(x)), spec, rng)


def attack_checked(clf: Classifier, x: np.ndarray, y: np.ndarray, spec: AttackSpec, rng: np.random.Generator):
    """``craft`` for images and labels already checked (an evaluation batch, a training batch of a loaded data
    set): no second pass over the batch on the host per attack or step."""
    ops = clf.backend.ops
    return attack(clf.backend, clf.model, ops.tensor(x), ops.tensor(y), spec, rng)


class Batch:
    """One batch's answers: R fresh draws per example (or one draw for a deterministic model)."""

    def __init__(self, clf: Classifier, x: np.ndarray, y: np.ndarray, answers: int, per_example: bool) -> None:
        self.clf, self.x, self.y = clf, x, y
        self.answers = answers if clf.controller.is_random else 1
        self.per_example = per_example and clf.controller.is_random

    def answer(self, images: np.ndarray, answers: int | None = None) -> np.ndarray:
        """(N, R) correctness of ``images`` under fresh draws (the current policy's draws); a non-finite logit
        is an error, not a wrong answer (argmax of NaN would score as class 0)."""
        r = self.answers if answers is None else answers
        out = np.empty((len(self.y), r), bool)
        for j in range(r):
            if self.per_example:
                out[:, j] = [self._predict(images[i:i + 1])[0] == self.y[i] for i in range(len(self.y))]
            else:
                out[:, j] = self._predict(images) == self.y
        return out

    def _predict(self, images: np.ndarray) -> np.ndarray:
        z = self.clf.logits(images)
        if not np.isfinite(z).all():
            raise FloatingPointError(f"the model gives NaN or infinite logits for {int((~np.isfinite(z)).any(1).sum())}"
                                     f" of {len(z)} images: its accuracy would be meaningless (a diverged or "
                                     "broken model)")
        return z.argmax(1)

    def submitted(self, adv: np.ndarray, spec: AttackSpec) -> tuple[np.ndarray, np.ndarray]:
        """(what the attacker submits, its L2 distances): a minimum-norm attack's output beyond its budget is
        replaced by the clean image."""
        l2 = np.linalg.norm((adv - self.x).reshape(len(self.x), -1), axis=1)
        if not spec.minimum_norm:
            return adv, l2
        return np.where((l2 <= spec.eps).reshape(-1, *[1] * (adv.ndim - 1)), adv, self.x), l2

    def most_confusing(self, candidates: list[np.ndarray], queries: int) -> np.ndarray:
        """Per example, the candidate whose cross-entropy averaged over ``queries`` fresh draws is highest."""
        losses = [np.mean([cross_entropy_np(self.clf.logits(adv), self.y) for _ in range(queries)], axis=0)
                  for adv in candidates]
        best = np.argmax(losses, axis=0)
        return np.stack(candidates)[best, np.arange(len(best))]


@contextmanager
def forwards(clf: Classifier) -> Iterator[list[int]]:
    """A counter of the forward passes (draws taken) inside the block: ``count[0]``."""
    count = [0]
    with clf.controller.observe(lambda _: count.__setitem__(0, count[0] + 1)):
        yield count
