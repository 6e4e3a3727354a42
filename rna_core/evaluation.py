"""Evaluation of (possibly randomized) classifiers under attack, every number labelled with its threat model.

Every example, clean or adversarial, is answered by ``answers`` = R fresh draws of the model's randomness and
scored by ``rna_core.scoring``: expected accuracy (one submission) and persistent accuracy (all R answers right),
each with a standard error. ``answer="per-batch"`` answers a batch with one draw per answer (how the model runs
by default); ``"per-example"`` gives every example its own draws (independent answers, N x R forwards of one
image). A deterministic model is answered once.

Threat models (``protocol``, joined with ``+``; ``all`` = paper+adaptive+oracle, ``both`` = paper+adaptive):
- ``paper``: the attack runs on one draw the attacker holds in its own copy of the model, for every step; fresh
  draws answer (the RNA and CTRW papers' protocol: transfer between draws). Every attack here has EOT 1.
- ``adaptive``: attacks that know the randomness. ``eot``: every gradient (Square: every loss) averaged over K
  fresh draws (``eot``; an attack whose spec already sets eot keeps it). ``transfer``: with
  ``transfer_draws`` = H > 1, the attack runs on H held draws and, per example, the attacker keeps the candidate
  whose cross-entropy averaged over K fresh queries is highest. Each member is answered by fresh draws, and the
  column's ``adaptive`` entry is the per-example worst of paper, eot and transfer: realizable attacks only.
- ``oracle``: the paper attack answered by the very draw it attacked, i.e. an attacker who knows the defender's
  next draw, which no attacker does. A labelled diagnostic: never inside a worst case.
A deterministic model is scored ``white-box`` (EOT is pointless there: every spec runs with eot 1).

Any classifier can be evaluated (``evaluate(module, ...)``, see ``classifier.adopt``). A module randomized by
``rna_core.torch.randomize`` gets every protocol. A module random in its own way (dropout at inference, a random
input transform: detected when two forwards on the same images differ) cannot have a draw held, so ``paper``,
``transfer`` and ``oracle`` are impossible: it is scored with ``eot`` (its adaptive member) and fresh answers,
and the result's ``protocols_skipped`` says what was not run and why. ``randomness`` names the source: ``rna-core``,
``own`` or ``none``.

``worst-case/<group>`` counts an example with its worst attack of the group (white-box, paper, adaptive); columns
holding several attacks (AutoAttack's members) combine the same way. Minimum-norm attacks (CW, DeepFool) submit
their output only where its L2 distance is within their budget ``eps``, else the clean image; they also report the
median L2 distortion of the examples most answers misclassify. ``forwards/<col>/<member>`` counts the forward
passes per image the attack spent (a gradient counts one). Results carry ``flags`` (``rna_core.sanity.flags``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .attacks import AttackSpec, attack
from .backend import Backend
from .classifier import Classifier, adopt
from .data.loader import batches, num_batches
from .losses import cross_entropy_np
from .scoring import Score, score

PROTOCOLS = ("paper", "adaptive", "oracle")
ALIASES = {"both": ("paper", "adaptive"), "all": PROTOCOLS}
ANSWER_MODES = ("per-batch", "per-example")


def parse_protocols(text: str | Sequence[str]) -> tuple[str, ...]:
    """``paper``, ``adaptive``, ``oracle``, joined with ``+`` (or a list), or ``both`` / ``all``."""
    items = ALIASES.get(text, text.split("+")) if isinstance(text, str) else tuple(text)
    bad = [p for p in items if p not in PROTOCOLS]
    if bad or not items:
        raise ValueError(f"protocol must be one or more of {PROTOCOLS} joined with '+', or one of "
                         f"{sorted(ALIASES)}; got {text!r}")
    return tuple(p for p in PROTOCOLS if p in items)


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


def _columns(attacks) -> dict[str, list[AttackSpec]]:
    """Report columns: a dict ``{column: [specs]}`` as given, or one column per spec named by its label."""
    if isinstance(attacks, dict):
        return {k: list(v) for k, v in attacks.items()}
    labels = [spec.label for spec in attacks]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ValueError(f"attacks {twice} share a label and would overwrite each other's scores: pass a dict "
                         "{column: [spec]} to name them")
    return {spec.label: [spec] for spec in attacks}


class _Batch:
    """One batch's answers: R fresh draws per example (or one draw for a deterministic model)."""

    def __init__(self, clf: Classifier, x: np.ndarray, y: np.ndarray, answers: int, per_example: bool) -> None:
        self.clf, self.x, self.y = clf, x, y
        self.answers = answers if clf.controller.is_random else 1
        self.per_example = per_example and clf.controller.is_random

    def answer(self, images: np.ndarray, answers: int | None = None) -> np.ndarray:
        """(N, R) correctness of ``images`` under fresh draws (the current policy's draws)."""
        clf = self.clf
        r = self.answers if answers is None else answers
        out = np.empty((len(self.y), r), bool)
        for j in range(r):
            if self.per_example:
                out[:, j] = [clf.logits(images[i:i + 1]).argmax(1)[0] == self.y[i] for i in range(len(self.y))]
            else:
                out[:, j] = clf.logits(images).argmax(1) == self.y
        return out

    def submitted(self, adv: np.ndarray, spec: AttackSpec) -> tuple[np.ndarray, np.ndarray]:
        """(what the attacker submits, its L2 distances): a minimum-norm attack's output beyond its budget is
        replaced by the clean image."""
        l2 = np.linalg.norm((adv - self.x).reshape(len(self.x), -1), axis=1)
        if not spec.minimum_norm:
            return adv, l2
        return np.where((l2 <= spec.eps).reshape(-1, *[1] * (adv.ndim - 1)), adv, self.x), l2


def _forwards(clf: Classifier):
    """A counter of the forward passes (draws taken) while it is active."""
    count = [0]
    return count, clf.controller.observe(lambda _: count.__setitem__(0, count[0] + 1))


def _most_confusing(clf: Classifier, batch: _Batch, candidates: list[np.ndarray], queries: int) -> np.ndarray:
    """Per example, the candidate whose cross-entropy averaged over ``queries`` fresh draws is highest."""
    losses = [np.mean([cross_entropy_np(clf.logits(adv), batch.y) for _ in range(queries)], axis=0)
              for adv in candidates]
    best = np.argmax(losses, axis=0)
    return np.stack(candidates)[best, np.arange(len(best))]


def evaluate(clf: Classifier, dataset, attacks: Sequence[AttackSpec] | dict[str, list[AttackSpec]] = (),
             protocol: str | Sequence[str] = "both", eot: int = 8, rng: np.random.Generator | None = None,
             batch_size: int = 250, progress: bool = True, answers: int = 10, answer: str = "per-batch",
             transfer_draws: int = 1, backend: str | Backend | None = None) -> dict:
    """Clean and robust accuracy (fractions in [0, 1]) of ``clf`` on ``dataset`` under ``protocol``, every example
    answered by ``answers`` fresh draws; ``eot`` is K of the adaptive attacks. See the module docstring for the
    keys; ``<key>`` is the expected accuracy, ``<key>/persistent`` the persistent one, ``<key>/se`` their SEs.
    ``clf`` may also be a user's torch module or MindSpore cell (``classifier.adopt``, run on ``backend``, by
    default the framework's own)."""
    from .sanity import flags

    if not isinstance(clf, Classifier):
        probe, _ = next(batches(dataset, min(8, len(dataset))))
        clf = adopt(clf, getattr(dataset, "num_classes", None) or _num_classes(dataset),
                    int(np.asarray(probe).shape[1]), np.asarray(probe, np.float32), backend)
    protocols = parse_protocols(protocol)
    if answer not in ANSWER_MODES:
        raise ValueError(f"answer must be one of {ANSWER_MODES}, got {answer!r}")
    for name, value in (("answers", answers), ("eot", eot), ("transfer_draws", transfer_draws),
                        ("batch_size", batch_size)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if getattr(dataset, "num_classes", clf.model.num_classes) != clf.model.num_classes:
        raise ValueError(f"the data set has {dataset.num_classes} classes but the model {clf.model.num_classes}")
    rng = rng or np.random.default_rng(0)
    be, ctrl = clf.backend, clf.controller
    random = ctrl.is_random
    holdable = getattr(clf.model, "holdable", True)  # False: randomness the model draws itself
    columns = _columns(attacks)
    clf.model.set_train(False)
    mats: dict[str, list[list[np.ndarray]]] = {}   # key -> per batch, the matrices to combine
    dists: dict[str, list[np.ndarray]] = {}
    forwards: dict[str, int] = {}
    clusters: list[np.ndarray] = []
    n_batches = num_batches(len(dataset), batch_size, False)
    bar = tqdm(batches(dataset, batch_size), total=n_batches, desc="evaluate", disable=not progress, leave=False)
    for b, (x, y) in enumerate(bar):
        batch = _Batch(clf, clf.check_images(x), clf.check_labels(y, len(x)), answers, answer == "per-example")
        found: dict[str, list[np.ndarray]] = {"clean": [batch.answer(batch.x)]}
        start = clusters[-1][-1] + 1 if clusters else 0
        clusters.append(start + np.arange(len(y)) if batch.per_example else np.full(len(y), b))

        def add(key: str, spec: AttackSpec, adv, count: int, found=found, batch=batch) -> None:
            images, l2 = batch.submitted(be.ops.numpy(adv), spec)
            correct = batch.answer(images)
            found.setdefault(key, []).append(correct)
            col, member = key.rsplit("/", 1)
            forwards[f"forwards/{key}"] = forwards.get(f"forwards/{key}", 0) + count
            if spec.minimum_norm:
                fooled = (correct.mean(1) < 0.5) & (l2 > 0) & (l2 <= spec.eps)
                dists.setdefault(f"{col}/median-l2/{member}", []).append(np.where(fooled, l2, np.nan))

        for col, specs in columns.items():
            for spec in specs:
                if not random:
                    count, counting = _forwards(clf)
                    with counting:
                        adv = attack_checked(clf, batch.x, batch.y, spec.replace(eot=1), rng)
                    add(f"{col}/white-box", spec, adv, count[0])
                    continue
                if not holdable:  # only the protocols that hold no draw: EOT over the model's own randomness
                    count, counting = _forwards(clf)
                    with counting:
                        adv_eot = attack_checked(clf, batch.x, batch.y, spec if spec.eot > 1 else
                                                 spec.replace(eot=eot), rng)
                    add(f"{col}/eot", spec, adv_eot, count[0])
                    continue
                paper_spec = spec.replace(eot=1)
                count, counting = _forwards(clf)
                with ctrl.frozen():
                    with counting:
                        adv = attack_checked(clf, batch.x, batch.y, paper_spec, rng)
                    if "oracle" in protocols:
                        images, _ = batch.submitted(be.ops.numpy(adv), spec)
                        found.setdefault(f"{col}/oracle", []).append(batch.answer(images, answers=1))
                if {"paper", "adaptive"} & set(protocols):
                    add(f"{col}/paper", spec, adv, count[0])
                if "adaptive" in protocols:
                    eot_spec = spec if spec.eot > 1 else spec.replace(eot=eot)
                    count, counting = _forwards(clf)
                    with counting:
                        adv_eot = attack_checked(clf, batch.x, batch.y, eot_spec, rng)
                    add(f"{col}/eot", spec, adv_eot, count[0])
                    if transfer_draws > 1:
                        count, counting = _forwards(clf)
                        with counting:
                            candidates = [be.ops.numpy(adv)]
                            for _ in range(transfer_draws - 1):
                                with ctrl.frozen():
                                    held = attack_checked(clf, batch.x, batch.y, paper_spec, rng)
                                    candidates.append(be.ops.numpy(held))
                            chosen = _most_confusing(clf, batch, candidates, eot)
                        add(f"{col}/transfer", spec, be.ops.tensor(chosen), count[0])
        for col in columns:
            members = [m for m in ("paper", "eot", "transfer") if f"{col}/{m}" in found]
            if "adaptive" in protocols and members:
                found[f"{col}/adaptive"] = [mat for m in members for mat in found[f"{col}/{m}"]]
        for group in ("white-box", "paper", "adaptive"):
            group_mats = [mat for col in columns for mat in found.get(f"{col}/{group}", [])]
            if group_mats:
                found[f"worst-case/{group}"] = group_mats
        if "paper" not in protocols:
            for col in [*columns, "worst-case"]:
                found.pop(f"{col}/paper", None)
        for key, value in found.items():
            mats.setdefault(key, []).append(value)
    cluster_ids = np.concatenate(clusters)
    out: dict = {"n": len(dataset), "random": bool(random),
                 "protocol": "+".join(protocols) if random else "white-box", "eot": eot if random else 1,
                 "answers": answers if random else 1, "answer": answer if random else "deterministic",
                 "transfer_draws": transfer_draws if random else 1,
                 "attacks": {col: [s.to_dict() for s in specs] for col, specs in columns.items()}}
    for key, per_batch in mats.items():
        joined = [np.concatenate([mats_b[i] for mats_b in per_batch]) for i in range(len(per_batch[0]))]
        out.update(score(joined, cluster_ids).to_dict(key))
    for key, v in dists.items():
        d = np.concatenate(v)
        out[key] = float(np.nanmedian(d)) if np.isfinite(d).any() else None
    out.update({k: v / n_batches for k, v in forwards.items()})
    out["randomness"] = "none" if not random else ("rna-core" if holdable else "own")
    if random and not holdable:
        out["protocol"] = "eot"
        out["protocols_skipped"] = {p: "the model draws its own randomness: no draw can be held"
                                    for p in ("paper", "transfer", "oracle")}
    out["flags"] = flags(out)
    if not random and columns:
        out["note"] = "the model is deterministic (no randomness drawn or detected): only white-box attacks were run"
    return out


def _num_classes(dataset) -> int:
    _, y = next(batches(dataset, len(dataset)))
    return int(np.max(y)) + 1


def score_examples(clf: Classifier, images: np.ndarray, labels: np.ndarray, answers: int = 10,
                   answer: str = "per-batch", batch_size: int = 250) -> Score:
    """Expected and persistent accuracy of given images (e.g. adversarial examples made by another library), each
    answered by ``answers`` fresh draws: the rule every rna-core evaluation uses."""
    if answer not in ANSWER_MODES:
        raise ValueError(f"answer must be one of {ANSWER_MODES}, got {answer!r}")
    clf.model.set_train(False)
    images = clf.check_images(images)
    labels = clf.check_labels(labels, len(images))
    mats, clusters = [], []
    for b, start in enumerate(range(0, len(labels), batch_size)):
        batch = _Batch(clf, images[start:start + batch_size], labels[start:start + batch_size], answers,
                       answer == "per-example")
        mats.append(batch.answer(batch.x))
        n = len(batch.y)
        clusters.append(start + np.arange(n) if batch.per_example else np.full(n, b))
    return score([np.concatenate(mats)], np.concatenate(clusters))


def trials(clf: Classifier, dataset, attacks: Sequence[AttackSpec] | dict[str, list[AttackSpec]], n: int = 10,
           protocol: str = "paper", eot: int = 8, seed: int = 0, batch_size: int = 250, progress: bool = True,
           answers: int = 1) -> dict:
    """Repeat the evaluation ``n`` times with fresh draws (the RNA supplement's stability table): per metric the
    list over trials and its mean, std, min and max."""
    runs = [evaluate(clf, dataset, attacks, protocol, eot, np.random.default_rng([seed, t]), batch_size, progress,
                     answers) for t in tqdm(range(n), desc="trials", disable=not progress, leave=False)]
    keys = [k for k, v in runs[0].items() if isinstance(v, float) and "/se" not in k and not k.startswith("forw")]
    return {k: {"trials": [r[k] for r in runs], "mean": float(np.mean([r[k] for r in runs])),
                "std": float(np.std([r[k] for r in runs])), "min": float(min(r[k] for r in runs)),
                "max": float(max(r[k] for r in runs))} for k in keys}


def evaluate_checkpoint(checkpoint: str | Path, backend: str | Backend = "torch",
                        attacks: Sequence[AttackSpec] | dict[str, list[AttackSpec]] | None = None,
                        samples: int | None = None, seed: int = 0, progress: bool = True, protocol: str = "both",
                        eot: int = 8, answers: int = 10, answer: str = "per-batch") -> dict:
    """Load a checkpoint on ``backend`` and evaluate it on its recipe's test split (``samples`` examples; default
    the recipe's ``eval_samples``) with ``attacks`` (default the recipe's ``eval_attack``)."""
    from .runs import load_run

    run = load_run(checkpoint, backend, seed, samples)
    attacks = run.recipe.eval_attacks if attacks is None else attacks
    return evaluate(run.classifier, run.test, attacks, protocol, eot, run.rng, run.recipe.eval_batch_size, progress,
                    answers, answer)
