"""Backend parity: the same weights, input, path and random start must give the same numbers everywhere.

``compare(a, b)`` builds one model per backend, copies a's canonical weights into b, holds one drawn path
(and CTRW noise) on both and reports, per quantity, the largest relative difference max|a - b| / max|a|: logits, loss,
input gradient, the weights and running statistics after one SGD step. For the attacks (PGD, FGSM, MIFGSM,
same random start) it reports the fraction of pixels that differ by more than 1e-6: a sign step flips where a
gradient component is within rounding of zero, so sign-based attacks agree pixel for pixel except at such ties.

``compare_apart(a, b)`` holds APART's perturbable BN to the same standard: the gradients w.r.t. the parameters
and the BN perturbation in pass 1 (delta = 0, running statistics updated) and pass 2 (delta = eps sign, groups,
running statistics untouched), and the weights after one step of SAM, APART and APART-SAM.

``compare_attacks(a, b)`` runs every other attack on both backends (same weights, path, labels and random
numbers) and reports, per attack, the fraction of pixels that differ by more than 1e-4, the difference of the
robust accuracies and the relative difference of the mean L2 perturbation. Attacks with discrete decisions
(Adam's first step lr sign(g), APGD's step halving, Square's accept test, CW's binary search) amplify
float32 rounding into different but equally valid iterates, so their agreement is judged on accuracy and
perturbation size; the pixel fraction shows how often that happened.

``compare_training(a, b)`` runs many steps of a training method with a fresh draw every forward (the controllers
of the two models are seeded alike and stay in step) and reports the largest difference of every weight, momentum
buffer and running statistic relative to that tensor's largest entry: a model trained on one backend must be the
model trained on the other, including for the candidates each step left alone.
"""

from __future__ import annotations

import numpy as np

from ..apart import BNPerturbation, adversarial_delta
from ..attacks import KINDS, AttackSpec, attack, fgsm, mifgsm, pgd
from ..backend import DELTA, PARAMS, Backend, SGDConfig
from ..classifier import Classifier, build_classifier
from ..losses import CE_MEAN, cross_entropy_np
from ..methods import Step, get_method
from ..recipes import get_recipe

QUANTITIES = ("logits", "loss", "input_gradient", "sgd_step", "running_stats", "pgd", "fgsm", "mifgsm")


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-12))


def _ce(logits: np.ndarray, y: np.ndarray) -> float:
    return float(cross_entropy_np(logits, y).mean())


def _attack(c: Classifier, x: np.ndarray, y: np.ndarray, spec: AttackSpec, seed: int) -> np.ndarray:
    ops = c.backend.ops
    return ops.numpy(attack(c.backend, c.model, ops.tensor(x), ops.tensor(y), spec, np.random.default_rng(seed)))


def _gradient(c: Classifier, x: np.ndarray, y: np.ndarray, bn: BNPerturbation):
    """The parameter and BN-perturbation gradients of the mean CE on the next draw, perturbed by ``bn``."""
    ops = c.backend.ops
    yb = ops.tensor(y)
    return c.backend.value_and_grad(c.model, CE_MEAN, ops.tensor(x), yb, yb, c.controller.next_draw().perturbed(bn),
                                    (PARAMS, DELTA))


def _method_step(c: Classifier, opt, method: str, x: np.ndarray, y: np.ndarray, recipe, seed, lr: float) -> None:
    get_method(method).step(Step(c, opt, recipe, np.random.default_rng(seed), lr), x, y)


def pair(a: Backend | str, b: Backend | str, norms: str, arch: str, width: int, seed: int,
          ctrw: dict | None = None):
    """One classifier per backend, b holding a's weights (``ctrw``: random weights, see build_classifier)."""
    spec = {"name": arch, "num_classes": 10, "in_channels": 3, "width": width, "ctrw": ctrw}
    ca = build_classifier(spec, norms, True, a, np.random.default_rng(seed), seed)
    cb = build_classifier(spec, norms, True, b, np.random.default_rng(seed), seed)
    cb.backend.set_state(cb.model, ca.backend.get_state(ca.model))
    return ca, cb


def compare(a: Backend | str, b: Backend | str, norms: str = "bn+in", arch: str = "resnet18", width: int = 4,
            seed: int = 0, size: int = 32, batch: int = 4, ctrw: dict | None = None) -> dict[str, float]:
    """Largest relative difference per quantity between backends ``a`` and ``b`` on one draw (path and, for a
    model with CTRW random weights placed by ``ctrw`` = {position, variant}, their noise)."""
    rng = np.random.default_rng(seed)
    ctrw = {**ctrw, "image_size": [size, size]} if ctrw else None
    ca, cb = pair(a, b, norms, arch, width, seed, ctrw)
    x = rng.random((batch, 3, size, size), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    path = ca.controller.draw()
    out: dict[str, float] = {}
    with ca.controller.fixed(path), cb.controller.fixed(path):
        for c in (ca, cb):
            c.model.set_train(False)
        la, lb = ca.logits(x), cb.logits(x)
        out["logits"] = _rel(la, lb)
        out["loss"] = _rel(np.array(_ce(la, y)), np.array(_ce(lb, y)))
        out["input_gradient"] = _rel(ca.input_gradient(x, y), cb.input_gradient(x, y))
        for name, spec_attack in (("pgd", pgd(3, 8 / 255, 2 / 255)), ("fgsm", fgsm()), ("mifgsm", mifgsm(3))):
            adv = [_attack(c, x, y, spec_attack, 1) for c in (ca, cb)]
            out[name] = float((np.abs(adv[0] - adv[1]) > 1e-6).mean())
        for c in (ca, cb):
            c.model.set_train(True)
            opt = c.backend.make_optimizer(c.model, SGDConfig(0.1, 0.9, 5e-4))
            yb = c.backend.ops.tensor(y)
            g = c.backend.value_and_grad(c.model, CE_MEAN, c.backend.ops.tensor(x), yb, yb, c.controller.next_draw())
            c.backend.update(c.model, opt, [(1.0, g)], 0.1)
    sa, sb = ca.backend.get_state(ca.model), cb.backend.get_state(cb.model)
    stats = [k for k in sa if "running_" in k]
    out["sgd_step"] = max(_rel(sa[k], sb[k]) for k in sa if k not in stats)
    out["running_stats"] = max((_rel(sa[k], sb[k]) for k in stats), default=0.0)
    return out


APART_QUANTITIES = ("delta_grad_pass1", "param_grad_pass1", "running_stats_pass1", "delta_grad_pass2",
                    "param_grad_pass2", "sam_step", "apart_step", "apart-sam_step")


def compare_apart(a: Backend | str, b: Backend | str, norms: str = "bn", arch: str = "small_cnn", width: int = 8,
                  seed: int = 0, size: int = 16, batch: int = 32, groups: int = 4) -> dict[str, float]:
    """Largest relative difference per quantity of ``APART_QUANTITIES`` between backends ``a`` and ``b``."""
    rng = np.random.default_rng(seed)
    ca, cb = pair(a, b, norms, arch, width, seed)
    x = rng.random((batch, 3, size, size), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    out: dict[str, float] = {}
    zero = BNPerturbation(np.zeros(ca.bn_layout.size), 1, True)
    with ca.controller.fixed(ca.controller.draw()) as path, cb.controller.fixed(path):
        grads = []
        for c in (ca, cb):
            c.model.set_train(True)
            grads.append(_gradient(c, x, y, zero))
        states = [c.backend.get_state(c.model) for c in (ca, cb)]
        theta = BNPerturbation(adversarial_delta(ca.backend.ops.numpy(grads[0].delta), 0.1), groups, False)
        grads2 = [_gradient(c, x, y, theta) for c in (ca, cb)]
        for tag, (ga, gb) in (("pass1", grads), ("pass2", grads2)):
            out[f"delta_grad_{tag}"] = _rel(ca.backend.ops.numpy(ga.delta), cb.backend.ops.numpy(gb.delta))
            if [u is None for u in ga.params] != [v is None for v in gb.params]:
                raise AssertionError(f"{tag}: the backends disagree on which parameters the pass used")
            out[f"param_grad_{tag}"] = max(_rel(ca.backend.ops.numpy(u), cb.backend.ops.numpy(v))
                                           for u, v in zip(ga.params, gb.params, strict=True) if u is not None)
        out["running_stats_pass1"] = max(_rel(states[0][k], states[1][k]) for k in states[0] if "running_" in k)
        for method in ("sam", "apart", "apart-sam"):
            after = []
            for c in (ca, cb):
                c.backend.set_state(c.model, states[0])
                opt = c.backend.make_optimizer(c.model, SGDConfig(0.1, 0.9, 5e-4))
                _method_step(c, opt, method, x, y, get_recipe("quick-apart", apart_groups=groups), seed + 1, 0.1)
                after.append(c.backend.get_state(c.model))
            out[f"{method}_step"] = max(_rel(after[0][k], after[1][k]) for k in after[0])
    return out


ONE_STEP = ("pgd", "fgsm", "mifgsm")  # sign steps on one draw: compared pixel for pixel by ``compare``


def examples() -> dict[str, AttackSpec]:
    """Every registered attack's examples but the ``ONE_STEP`` ones: what ``compare_attacks`` runs."""
    return {label: make() for kind in KINDS.values() for label, make in kind.examples.items()
            if not (kind.name in ONE_STEP and label == kind.name)}


def compare_attacks(a: Backend | str, b: Backend | str, attacks: dict[str, AttackSpec] | None = None,
                    norms: str = "bn+in", arch: str = "small_cnn", width: int = 8, seed: int = 0, size: int = 16,
                    batch: int = 32) -> dict[str, dict[str, float]]:
    """Per attack: ``pixels`` (fraction differing by > 1e-4), ``accuracy`` (|robust accuracy a - b|, each backend
    scoring its own examples) and ``l2`` (relative difference of the mean L2 perturbation), on one fixed path,
    labels = a's clean predictions (every example starts correctly classified)."""
    ca, cb = pair(a, b, norms, arch, width, seed)
    attacks = examples() if attacks is None else attacks
    x = np.random.default_rng(seed).random((batch, 3, size, size), dtype=np.float32)
    out: dict[str, dict[str, float]] = {}
    with ca.controller.fixed(ca.controller.draw()) as path, cb.controller.fixed(path):
        for c in (ca, cb):
            c.model.set_train(False)
        y = ca.logits(x).argmax(1)
        for name, spec in attacks.items():
            adv, acc = [], []
            for c in (ca, cb):
                xa = _attack(c, x, y, spec, seed + 1)
                adv.append(xa)
                acc.append(float((c.logits(xa).argmax(1) == y).mean()))
            l2 = [float(np.linalg.norm((v - x).reshape(batch, -1), axis=1).mean()) for v in adv]
            out[name] = {"pixels": float((np.abs(adv[0] - adv[1]) > 1e-4).mean()),
                               "accuracy": abs(acc[0] - acc[1]), "l2": abs(l2[0] - l2[1]) / max(l2[0], 1e-12)}
    return out


def compare_training(a: Backend | str, b: Backend | str, norms: str = "bn+in", method: str = "clean",
                     steps: int = 20, arch: str = "small_cnn", width: int = 8, seed: int = 0, size: int = 12,
                     batch: int = 16) -> dict[str, float]:
    """``{"weights" | "momentum" | "running_stats": largest per-tensor relative difference}`` after ``steps``
    steps of ``method`` (SGD lr 0.05, momentum 0.9, wd 5e-4 as the paper recipes; PGD-1 for adversarial methods)
    from the same weights and data, every forward drawing a fresh path on both backends."""
    ca, cb = pair(a, b, norms, arch, width, seed)
    recipe = get_recipe("quick", method=method, train_attack=pgd(1, 8 / 255, 8 / 255), sam_rho=0.05)
    data = np.random.default_rng(seed + 1)
    x = data.random((steps, batch, 3, size, size), dtype=np.float32)
    y = data.integers(0, 10, (steps, batch))
    states, moments = [], []
    for c in (ca, cb):
        opt = c.backend.make_optimizer(c.model, SGDConfig(0.05, 0.9, 5e-4))
        c.model.set_train(True)
        for t in range(steps):
            _method_step(c, opt, method, x[t], y[t], recipe, [seed, t], 0.05)
        states.append(c.backend.get_state(c.model))
        moments.append(c.backend.get_state(c.model, optimizer=opt))
    if set(moments[0]) != set(moments[1]):
        raise AssertionError(f"momentum buffers on one backend only: {sorted(set(moments[0]) ^ set(moments[1]))}")

    def worst(x: dict, y: dict, keys) -> float:
        return max((_rel(x[k], y[k]) for k in keys), default=0.0)

    stats = [k for k in states[0] if "running_" in k]
    return {"weights": worst(*states, [k for k in states[0] if k not in stats]),
            "momentum": worst(*moments, moments[0]), "running_stats": worst(*states, stats)}
