"""Adversarial examples from a user's code: ``attack(model, x, y, "pgd", eps=8/255)`` returns them in the caller's
framework, device and dtype (torch tensors, MindSpore Tensors or numpy), like torchattacks' ``atk(images, labels)``.

``model`` is a Classifier (``load_classifier``, ``create_model``) or any torch module / MindSpore cell
(``classifier.adopt``). ``attack`` is a grammar word (``pgd``, ``pgd:40``, ``apgd-ce``, ``square:1000``,
``autoattack``...; ``rna_core.attacks.grammar_help()``) or an ``AttackSpec``; keyword fields replace the spec's
(``steps``, ``alpha``, ``norm``, ``eot``, ``restarts``, ``targeted``...). A word given with ``eps`` builds its
attack for that budget (step size eps / 4 where the attack has one, rna-core's rule; torchattacks' PGD default is
alpha = 2/255 at eps = 8/255, the same).

On a randomized model, ``draw="fresh"`` (default) lets every forward draw afresh, each gradient averaged over
``eot`` draws (Athalye et al.'s EOT; torchattacks on a random model is the eot = 1 case); ``draw="held"`` holds
one draw per batch for the whole attack (the RNA / CTRW papers' attacker). A suite (``autoattack``) runs its members
in order on the examples still classified right (one fresh answer each) and, like AutoAttack, returns the clean
image where no member succeeded. Minimum-norm attacks (CW, DeepFool) return their raw output; ``evaluate`` submits
it only within the budget ``eps``.

Seeded: the attack's random numbers and the model's draws come from ``seed`` (``SeedSequence(seed)``: the same
derivation as ``evaluate``, so a white-box evaluation of one batch attacks with these very examples).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .attacks import AttackSpec, parse_attack
from .classifier import Classifier, adopt
from .data.inputs import as_examples, first_images, iterate, like
from .evaluation.answers import attack_checked
from .validation import UnknownKeyError

DRAWS = ("fresh", "held")


def specs_of(attack: str | AttackSpec | list[AttackSpec], eps: float | None, fields: dict) -> list[AttackSpec]:
    """The attack's specs (several for a suite), ``eps`` and ``fields`` applied; unknown fields name the known."""
    known = {f.name for f in dataclasses.fields(AttackSpec)} - {"name"}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise UnknownKeyError(f"unknown attack field(s) {unknown}; an attack takes {sorted(known)}")
    if isinstance(attack, str):
        specs = parse_attack(attack, 8 / 255 if eps is None else eps)[1]
    elif isinstance(attack, AttackSpec):
        specs = [attack if eps is None else attack.replace(eps=eps)]
    elif isinstance(attack, list | tuple) and attack and all(isinstance(s, AttackSpec) for s in attack):
        specs = [s if eps is None else s.replace(eps=eps) for s in attack]
    else:
        raise TypeError(f"attack must be a name (e.g. 'pgd', 'apgd-ce', 'square:1000') or an AttackSpec, got "
                        f"{type(attack).__name__}")
    return [s.replace(**fields) for s in specs]


def attack(model: Any, x: Any, y: Any, attack: str | AttackSpec = "pgd", *, eps: float | None = None,
           draw: str = "fresh", seed: int = 0, batch_size: int = 250, backend: Any = None, **fields) -> Any:
    """Adversarial examples of images ``x`` (N x C x H x W, float in [0, 1] or uint8) with labels ``y`` against
    ``model`` in eval mode (its mode is restored after), returned like ``x`` (see the module docstring)."""
    if draw not in DRAWS:
        raise ValueError(f"draw must be one of {DRAWS}, got {draw!r}")
    specs = specs_of(attack, eps, fields)
    source = as_examples((x, y))
    clf = model if isinstance(model, Classifier) else adopt(model, None, int(source.x.shape[1]),
                                                            first_images(source, 8), backend)
    if draw == "held" and clf.controller.is_random and any(s.eot > 1 for s in specs):
        raise ValueError("draw='held' answers every forward with the held draw: eot > 1 would average one draw")
    attack_seed, draw_seed = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(attack_seed)
    out = []
    with clf.controller.seeded(np.random.default_rng(draw_seed)), clf.evaluating():
        for xb, yb in iterate(source, batch_size):
            xb, yb = clf.check_images(xb), clf.check_labels(yb, len(xb))
            out.append(_cascade(clf, xb, yb, specs, rng, draw == "held"))
    return like(np.concatenate(out), x)


def _cascade(clf: Classifier, x: np.ndarray, y: np.ndarray, specs: list[AttackSpec], rng: np.random.Generator,
             held: bool) -> np.ndarray:
    """One spec's examples; a suite's members in order on the examples not yet misclassified (clean image where
    none succeeds)."""
    if len(specs) == 1:
        return _run(clf, x, y, specs[0], rng, held)
    result, todo = x.copy(), np.ones(len(y), bool)
    for spec in specs:
        if not todo.any():
            break
        idx = np.flatnonzero(todo)
        adv = _run(clf, x[idx], y[idx], spec, rng, held)
        fooled = clf.logits(adv).argmax(1) != y[idx]
        result[idx[fooled]] = adv[fooled]
        todo[idx[fooled]] = False
    return result


def _run(clf: Classifier, x: np.ndarray, y: np.ndarray, spec: AttackSpec, rng: np.random.Generator,
         held: bool) -> np.ndarray:
    if held and clf.controller.is_random:
        with clf.controller.frozen():
            return clf.backend.ops.numpy(attack_checked(clf, x, y, spec.replace(eot=1), rng))
    return clf.backend.ops.numpy(attack_checked(clf, x, y, spec if clf.controller.is_random else
                                                spec.replace(eot=1), rng))
