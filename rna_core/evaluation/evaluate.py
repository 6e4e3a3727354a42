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
passes per image the attack spent (a gradient counts one). Results carry ``flags`` (``flags``) and ``per_class``:
for the clean answers and each worst case, every class's example count and expected and persistent accuracy
(``scoring.per_class``: where the robustness lives).

The work runs column by column: the clean answers over every batch, then each attack column over every batch
(``record``: the data is read once per column and must not change between passes). With ``save_dir`` each finished
column is kept on disk as it completes, and an evaluation with the same settings there resumes from it to the
numbers of an uninterrupted run. The threat models are the classes of ``threats``; ``answers`` answers and submits.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..attacks import AttackSpec, parse_attack
from ..classifier import Classifier
from ..data.inputs import as_examples, count_batches, first_images, iterate
from ..progress import forward_bar
from ..protocols import ANSWER_MODES, parse_protocols
from ..scoring import Score, per_class, score
from .answers import Batch
from .flags import flags
from .record import Passes, Record, Store
from .threats import Job, Tally, plan

Attacks = Sequence[AttackSpec] | dict[str, list[AttackSpec]]
SKIPPED = {p: "the model draws its own randomness: no draw can be held" for p in ("paper", "transfer", "oracle")}


def _columns(attacks: Attacks) -> dict[str, list[AttackSpec]]:
    """Report columns: a dict ``{column: [specs]}`` as given, or one column per spec named by its label (a grammar
    word, ``"pgd"``, ``"autoattack"``, is its column)."""
    if isinstance(attacks, dict):
        return {k: list(v) for k, v in attacks.items()}
    if isinstance(attacks, str | AttackSpec):
        attacks = [attacks]
    columns: list[tuple[str, list[AttackSpec]]] = []
    for a in attacks:
        if isinstance(a, str):
            columns.append(parse_attack(a))
        elif isinstance(a, AttackSpec):
            columns.append((a.label, [a]))
        else:
            raise TypeError(f"an attack is an AttackSpec or a name such as 'pgd' or 'apgd-ce', got {type(a).__name__}")
    labels = [label for label, _ in columns]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ValueError(f"attacks {twice} share a label and would overwrite each other's scores: pass a dict "
                         "{column: [spec]} to name them")
    return dict(columns)


def _check_settings(clf: Classifier, dataset, answer: str, **counts: int) -> None:
    if answer not in ANSWER_MODES:
        raise ValueError(f"answer must be one of {ANSWER_MODES}, got {answer!r}")
    for name, value in counts.items():
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if (getattr(dataset, "num_classes", None) or clf.model.num_classes) != clf.model.num_classes:
        raise ValueError(f"the data set has {dataset.num_classes} classes but the model {clf.model.num_classes}")


def _group(answers: dict[str, list[np.ndarray]], columns: list[str], protocols: tuple[str, ...]) -> dict:
    """The keys scored from the members' answer matrices: each member, each column's adaptive worst case (paper,
    eot, transfer), the worst cases over the columns (white-box, paper, adaptive); the paper members leave if
    only the adaptive case was asked for."""
    found = dict(answers)
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
    return found


def _header(clf: Classifier, n: int, columns: dict, protocols: tuple[str, ...], eot: int, answers: int, answer: str,
            transfer_draws: int) -> dict:
    random, holdable = clf.controller.is_random, clf.model.holdable
    out = {"n": n, "classes": int(clf.model.num_classes), "random": bool(random),
           "protocol": "+".join(protocols) if random else "white-box",
           "eot": eot if random else 1, "answers": answers if random else 1,
           "answer": answer if random else "deterministic", "transfer_draws": transfer_draws if random else 1,
           "attacks": {col: [s.to_dict() for s in specs] for col, specs in columns.items()},
           "randomness": "none" if not random else ("rna-core" if holdable else "own")}
    if random and not holdable:
        out.update(protocol="eot", protocols_skipped=dict(SKIPPED))
    return out


def seeds(seed: int | Sequence[int]) -> tuple[np.random.Generator, np.random.Generator]:
    """(the model's draws, the attacks' random numbers) of an evaluation or attack seeded by ``seed``: the two
    children of ``SeedSequence(seed)``."""
    draws, attacks = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(draws), np.random.default_rng(attacks)


def evaluate(clf: Classifier, dataset, attacks: Attacks = (), protocol: str | Sequence[str] = "both", eot: int = 8,
             *, seed: int | Sequence[int] = 0, batch_size: int = 250, progress: bool = True, answers: int = 10,
             answer: str = "per-batch", transfer_draws: int = 1, backend=None,
             save_dir: str | Path | None = None) -> dict:
    """Clean and robust accuracy (fractions in [0, 1]) of ``clf`` on ``dataset`` under ``protocol``, every example
    answered by ``answers`` fresh draws; ``eot`` is K of the adaptive attacks. See the module docstring for the
    keys; ``<key>`` is the expected accuracy, ``<key>/persistent`` the persistent one, ``<key>/se`` their SEs.

    ``clf`` may also be a user's torch module or MindSpore cell (``classifier.adopt``, run on ``backend``, by
    default the framework's own); ``dataset`` any form of ``rna_core.data.inputs`` (an rna-core data set, an
    ``(x, y)`` pair of arrays or tensors, a torch ``DataLoader``...); ``attacks`` specs or names (``"pgd"``).
    The numbers are a function of the weights, the data, the settings and ``seed`` (the draws and the attacks'
    random numbers, ``seeds``), reported as ``seed``. The work runs column by column (the clean answers, then
    each attack over every batch); with ``save_dir`` each finished column is kept there as it completes and an
    evaluation with the same settings resumes from it (``record``), ending with an uninterrupted run's numbers.
    ``progress``: an estimate first, then a bar in forward passes (``rna_core.progress``)."""
    dataset = as_examples(dataset)
    if not isinstance(clf, Classifier):
        clf = _adopt(clf, dataset, backend)
    protocols = parse_protocols(protocol)
    _check_settings(clf, dataset, answer, answers=answers, eot=eot, transfer_draws=transfer_draws,
                    batch_size=batch_size)
    columns = _columns(attacks)
    threats = plan(clf.controller.is_random, clf.model.holdable, protocols)
    streams = seeds(seed)
    header = _header(clf, 0, columns, protocols, eot, answers, answer, transfer_draws)
    header["seed"] = seed if isinstance(seed, int) else list(seed)
    record, store = Record(), None
    if save_dir is not None:
        store = Store(save_dir, {**{k: header[k] for k in SETTINGS}, "batch_size": batch_size,
                                 "backend": clf.backend.name, "model": fingerprint(clf)})
        if store.load(record, streams) and progress:
            print(f"rna-core evaluate: resuming from {save_dir} ({', '.join(record.done)} done)", file=sys.stderr)
    passes = Passes(dataset, batch_size, record, "the first pass" if store is None or not record.done else
                    f"the saved evaluation in {save_dir}")
    n_batches = count_batches(dataset, batch_size)
    cost = _costs(clf, dataset, columns, threats, eot, transfer_draws, answers, answer, batch_size)
    total = n_batches and n_batches * sum(cost.values())
    done = n_batches and n_batches * sum(cost[c] for c in record.done)
    probe = first_images(dataset, batch_size) if progress and total and total > done else None
    run = _Run(clf, columns, threats, streams[1], eot, transfer_draws, answers, answer == "per-example", record,
               n_batches)
    with forward_bar(clf, total, "evaluate", progress, probe, done) as bar, clf.controller.seeded(streams[0]), \
            clf.evaluating():
        order = ["clean", *columns]
        for col in order:
            if col in record.done:
                continue
            run.column(col, passes, bar)
            if store is not None:
                store.save(record, streams, _result(header, record, columns, protocols), col == order[-1])
    return _result(header, record, columns, protocols)


SETTINGS = ("protocol", "eot", "answers", "answer", "transfer_draws", "attacks", "seed", "classes")


class _Run:
    """One evaluation's columns, run batch by batch into ``record``."""

    def __init__(self, clf: Classifier, columns: dict, threats: list, rng: np.random.Generator, eot: int,
                 transfer_draws: int, answers: int, per_example: bool, record: Record, n_batches: int | None):
        self.clf, self.columns, self.threats, self.rng = clf, columns, threats, rng
        self.eot, self.transfer_draws, self.answers, self.per_example = eot, transfer_draws, answers, per_example
        self.record, self.n_batches = record, n_batches

    def column(self, col: str, passes: Passes, bar) -> None:
        """The clean answers (``col == "clean"``: also each example's draw cluster) or one attack column."""
        per_batch, clusters, tally = [], [], Tally()
        for b, (x, y) in enumerate(passes):
            bar.set_postfix_str(f"{col} batch {b + 1}/{self.n_batches or '?'}")
            clf = self.clf
            batch = Batch(clf, clf.check_images(x), clf.check_labels(y, len(x)), self.answers, self.per_example)
            found: dict[str, list[np.ndarray]] = {}
            if col == "clean":
                found["clean"] = [batch.answer(batch.x)]
                start = clusters[-1][-1] + 1 if clusters else 0
                clusters.append(start + np.arange(len(y)) if batch.per_example else np.full(len(y), b))
            for spec in self.columns.get(col, []) if col != "clean" else []:
                job = Job(clf, batch, col, spec, self.rng, self.eot, self.transfer_draws, tally, found)
                for threat in self.threats:
                    threat.run(job)
            per_batch.append(found)
        if not per_batch:
            raise ValueError("no examples to evaluate: the data is empty")
        self.record.add(per_batch)
        if col == "clean":
            self.record.clusters = np.concatenate(clusters)
        for key, count in tally.forwards.items():
            self.record.tally.forwards[key] = count / len(per_batch)
        self.record.tally.dists.update(tally.dists)
        self.record.done.append(col)


def _result(header: dict, record: Record, columns: dict, protocols: tuple[str, ...]) -> dict:
    """The scores of the columns done (all of them at the end), with the header, seed and flags."""
    out = {**header, "n": len(record.clusters)}
    mats = _group(record.answers, [c for c in columns if c in record.done], protocols)
    for key, ms in mats.items():
        out.update(score(ms, record.clusters).to_dict(key))
    if record.marks:
        labels = record.labels()
        out["per_class"] = {k: per_class(mats[k], labels, header["classes"]) for k in mats
                            if k == "clean" or k.startswith("worst-case/")}
    for key, v in record.tally.dists.items():
        d = np.concatenate(v)
        out[key] = float(np.nanmedian(d)) if np.isfinite(d).any() else None
    out.update(record.tally.forwards)
    out["seed"] = header["seed"]
    out["flags"] = flags(out)
    if header["random"] is False and columns:
        out["note"] = "the model is deterministic (no randomness drawn or detected): only white-box attacks were run"
    return out


def fingerprint(clf: Classifier) -> str:
    """SHA-256 of the model's state (every array by canonical name): what a saved evaluation was made on."""
    h = hashlib.sha256()
    for name, value in sorted(clf.backend.get_state(clf.model).items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


def _costs(clf: Classifier, dataset, columns: dict, threats: list, eot: int, transfer_draws: int, answers: int,
           answer: str, batch_size: int) -> dict[str, int]:
    """Per column (``clean`` first) the forward passes one batch takes at most."""
    random = clf.controller.is_random
    r = answers if random else 1
    one = min(batch_size, len(dataset) or batch_size) if answer == "per-example" and random else 1
    out = {"clean": one * r}
    for col, specs in columns.items():
        out[col] = sum(t.forwards(spec, eot, transfer_draws, one, r) for spec in specs for t in threats)
    return out


def planned_passes(clf: Classifier, dataset, attacks: Attacks = (), protocol: str | Sequence[str] = "both",
                   eot: int = 8, *, batch_size: int = 250, answers: int = 10, answer: str = "per-batch",
                   transfer_draws: int = 1) -> int:
    """The forward passes ``evaluate`` with these settings takes at most (0 for a stream of unknown length): what
    a command running several evaluations sums for its estimate."""
    dataset = as_examples(dataset)
    threats = plan(clf.controller.is_random, clf.model.holdable, parse_protocols(protocol))
    cost = _costs(clf, dataset, _columns(attacks), threats, eot, transfer_draws, answers, answer, batch_size)
    return (count_batches(dataset, batch_size) or 0) * sum(cost.values())


def _adopt(model, dataset, backend) -> Classifier:
    """A user's module or cell as a Classifier, checked and its randomness probed on the data set's first images;
    the class count is the data set's ``num_classes``, else the module's output width (the labels are checked
    against it batch by batch)."""
    from ..classifier import adopt

    probe = first_images(dataset, 8)
    return adopt(model, getattr(dataset, "num_classes", None) or None, int(probe.shape[1]), probe, backend)


def score_examples(clf: Classifier, images, labels, answers: int = 10, answer: str = "per-batch",
                   batch_size: int = 250, seed: int | Sequence[int] = 0, backend=None) -> Score:
    """Expected and persistent accuracy of given images (e.g. adversarial examples made by another library; numpy,
    torch or MindSpore, uint8 or float in [0, 1]), each answered by ``answers`` fresh draws seeded by ``seed``: the
    rule every rna-core evaluation uses. ``clf`` may be a user's module (``classifier.adopt``)."""
    if answer not in ANSWER_MODES:
        raise ValueError(f"answer must be one of {ANSWER_MODES}, got {answer!r}")
    data = as_examples((images, labels))
    if not isinstance(clf, Classifier):
        clf = _adopt(clf, data, backend)
    draws, _ = seeds(seed)
    mats, clusters = [], []
    with clf.controller.seeded(draws), clf.evaluating():
        for b, (x, y) in enumerate(iterate(data, batch_size)):
            batch = Batch(clf, clf.check_images(x), clf.check_labels(y, len(x)), answers, answer == "per-example")
            mats.append(batch.answer(batch.x))
            start = b * batch_size
            clusters.append(start + np.arange(len(y)) if batch.per_example else np.full(len(y), b))
    return score([np.concatenate(mats)], np.concatenate(clusters))


def trials(clf: Classifier, dataset, attacks: Attacks, n: int = 10, protocol: str = "paper", eot: int = 8,
           seed: int = 0, batch_size: int = 250, progress: bool = True, answers: int = 1) -> dict:
    """Repeat the evaluation ``n`` times with fresh draws (the RNA supplement's stability table): per metric the
    list over trials and its mean, std, min and max."""
    runs = [evaluate(clf, dataset, attacks, protocol, eot, seed=(seed, t), batch_size=batch_size, progress=progress,
                     answers=answers) for t in tqdm(range(n), desc="trials", disable=not progress, leave=False)]
    keys = [k for k, v in runs[0].items() if isinstance(v, float) and "/se" not in k and not k.startswith("forw")]
    return {k: {"trials": [r[k] for r in runs], "mean": float(np.mean([r[k] for r in runs])),
                "std": float(np.std([r[k] for r in runs])), "min": float(min(r[k] for r in runs)),
                "max": float(max(r[k] for r in runs))} for k in keys}
