"""The threat models an evaluation runs, one small class each, and what one attack on one batch records.

- ``WhiteBox``: a deterministic model, attacked directly (EOT is pointless there: eot 1).
- ``Paper``: the attack runs on one draw the attacker holds for every step; fresh draws answer (the RNA and CTRW
  papers' protocol: transfer between draws). With ``oracle`` it also has the very draw it attacked answer, an
  attacker who knows the defender's next draw: a labelled diagnostic, never in a worst case.
- ``EOT``: every gradient (Square: every loss) averaged over K fresh draws (a spec that sets eot keeps it); fresh
  draws answer. The one protocol for a model whose randomness is its own (no draw can be held).
- ``Transfer``: the attack on H held draws; per example the attacker submits the candidate whose cross-entropy
  averaged over K fresh queries is highest.
``plan`` chooses them for a model and the protocols asked for; the adaptive worst case of a column is the per-example
worst of its paper, eot and transfer members (``evaluate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..attacks import AttackSpec, kind_of
from ..classifier import Classifier
from .answers import Batch, attack_checked, forwards


@dataclass
class Tally:
    """What the batches have recorded besides answers: forward counts and the L2 distances of minimum-norm
    attacks' successes."""

    forwards: dict[str, int] = field(default_factory=dict)
    dists: dict[str, list[np.ndarray]] = field(default_factory=dict)


@dataclass
class Job:
    """One attack ``spec`` of column ``col`` on one ``batch``: ``eot`` (K) and ``transfer_draws`` (H) of the
    adaptive members; ``held``: the paper attack's examples on its held draw and their forward count."""

    clf: Classifier
    batch: Batch
    col: str
    spec: AttackSpec
    rng: np.random.Generator
    eot: int
    transfer_draws: int
    tally: Tally
    found: dict[str, list[np.ndarray]]
    held: tuple[np.ndarray, int] | None = None

    def attack(self, spec: AttackSpec) -> tuple[np.ndarray, int]:
        """(host adversarial examples, forwards they took) of ``spec`` on the current policy."""
        with forwards(self.clf) as count:
            adv = attack_checked(self.clf, self.batch.x, self.batch.y, spec, self.rng)
        return self.clf.backend.ops.numpy(adv), count[0]

    def record(self, member: str, adv: np.ndarray, count: int) -> None:
        """``adv`` submitted and answered by fresh draws, under ``<col>/<member>``."""
        images, l2 = self.batch.submitted(adv, self.spec)
        correct = self.batch.answer(images)
        key = f"{self.col}/{member}"
        self.found.setdefault(key, []).append(correct)
        self.tally.forwards[f"forwards/{key}"] = self.tally.forwards.get(f"forwards/{key}", 0) + count
        if self.spec.minimum_norm:
            fooled = (correct.mean(1) < 0.5) & (l2 > 0) & (l2 <= self.spec.eps)
            self.tally.dists.setdefault(f"{self.col}/median-l2/{member}", []).append(np.where(fooled, l2, np.nan))

    def eot_spec(self) -> AttackSpec:
        return self.spec if self.spec.eot > 1 else self.spec.replace(eot=self.eot)


def cost(spec: AttackSpec) -> int:
    """The forward passes of one run of ``spec`` (at most)."""
    return kind_of(spec.name).forwards(spec)


class WhiteBox:
    member = "white-box"

    def run(self, job: Job) -> None:
        job.record(self.member, *job.attack(job.spec.replace(eot=1)))

    def forwards(self, spec: AttackSpec, eot: int, transfer_draws: int, one: int, answers: int) -> int:
        """Forward passes on one batch (``one``: those of one answer, ``answers`` R), for progress and estimates."""
        return cost(spec.replace(eot=1)) + one


@dataclass
class Paper:
    """``record``: the member enters the result (asked for, or for the adaptive worst case); ``oracle``: the held
    draw also answers the examples it was attacked on."""

    record: bool = True
    oracle: bool = False
    member = "paper"

    def run(self, job: Job) -> None:
        with job.clf.controller.frozen():
            adv, count = job.attack(job.spec.replace(eot=1))
            if self.oracle:
                images, _ = job.batch.submitted(adv, job.spec)
                job.found.setdefault(f"{job.col}/oracle", []).append(job.batch.answer(images, answers=1))
        job.held = (adv, count)
        if self.record:
            job.record(self.member, adv, count)

    def forwards(self, spec: AttackSpec, eot: int, transfer_draws: int, one: int, answers: int) -> int:
        return cost(spec.replace(eot=1)) + (one * answers if self.record else 0) + (one if self.oracle else 0)


class EOT:
    member = "eot"

    def run(self, job: Job) -> None:
        job.record(self.member, *job.attack(job.eot_spec()))

    def forwards(self, spec: AttackSpec, eot: int, transfer_draws: int, one: int, answers: int) -> int:
        return cost(spec if spec.eot > 1 else spec.replace(eot=eot)) + one * answers


class Transfer:
    """Runs after ``Paper`` (its held draw's examples are the first candidate) when H > 1."""

    member = "transfer"

    def run(self, job: Job) -> None:
        if job.transfer_draws < 2:
            return
        adv, _ = job.held
        with forwards(job.clf) as count:
            candidates = [adv]
            for _ in range(job.transfer_draws - 1):
                with job.clf.controller.frozen():
                    candidates.append(job.attack(job.spec.replace(eot=1))[0])
            chosen = job.batch.most_confusing(candidates, job.eot)
        job.record(self.member, chosen, count[0])

    def forwards(self, spec: AttackSpec, eot: int, transfer_draws: int, one: int, answers: int) -> int:
        if transfer_draws < 2:
            return 0
        return (transfer_draws - 1) * cost(spec.replace(eot=1)) + transfer_draws * eot + one * answers


def plan(random: bool, holdable: bool, protocols: tuple[str, ...]) -> list:
    """The threat models to run, in order, for a model that is ``random`` (its draws ``holdable`` or its own)."""
    if not random:
        return [WhiteBox()]
    if not holdable:
        return [EOT()]
    out = [Paper(record=bool({"paper", "adaptive"} & set(protocols)), oracle="oracle" in protocols)]
    return out + ([EOT(), Transfer()] if "adaptive" in protocols else [])
