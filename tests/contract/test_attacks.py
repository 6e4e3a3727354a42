"""What every backend promises for attacks: the Oracle's losses are the float64 formulas, its gradients and
Jacobian are derivatives of its logits, and every attack fools the model, stays within its budget and [0, 1], and
draws its random numbers only from the Generator it is given."""

import numpy as np
import pytest

from rna_core import attacks as A
from rna_core.attacks import Oracle
from rna_core.backend import SGDConfig
from rna_core.classifier import build_classifier
from rna_core.data import load_bundled
from rna_core.data.loader import batches
from rna_core.losses import KL
from rna_core.methods import take_step
from rna_core.recipes import get_recipe
from rna_core.registry import get_backend

SPECS = {label: make() for kind in A.KINDS.values() for label, make in kind.examples.items()}  # every attack's
RANDOMIZED = [label for label, spec in SPECS.items()  # those drawing random numbers: a start, targets, squares
              if A.kind_of(spec.name).random_start or spec.targeted or A.kind_of(spec.name).gradient_free]


@pytest.fixture(scope="module")
def victim(make_classifier):
    """A deterministic model (plain BN, two epochs of clean training on 1,024 bundled images, eval mode) and 16
    test images labelled with its own predictions, so that every attack starts at 100 % accuracy."""
    clf = make_classifier("bn", width=8)
    be = clf.backend
    trainer = clf  # MindSpore trains the weights in GRAPH_MODE (PyNative takes ~10x as long) and copies them
    if be.name == "mindspore" and be.mode == "pynative":
        trainer = build_classifier(dict(clf.arch), "bn", True, get_backend("mindspore", mode="graph"),
                                   np.random.default_rng(0), 0)
    opt = trainer.backend.make_optimizer(trainer.model, SGDConfig(0.05, 0.9, 5e-4))
    rng = np.random.default_rng(0)
    for _ in range(2):
        for xb, yb in batches(load_bundled("train").subset(1024), 64, rng, shuffle=True):
            take_step(trainer, opt, "clean", xb, yb, get_recipe("quick"), rng, 0.05)
    if trainer is not clf:
        be.set_state(clf.model, trainer.backend.get_state(trainer.model))
    clf.model.set_train(False)
    x = load_bundled("test").subset(16).x.astype(np.float32) / 255
    y = clf.logits(x).argmax(1)
    return clf, x, y


def _attack(clf, x, y, spec, seed=0):
    be = clf.backend
    return be.ops.numpy(A.attack(be, clf.model, be.ops.tensor(x), be.ops.tensor(y), spec,
                                 np.random.default_rng(seed)))


def _accuracy(clf, x, y) -> float:
    return float((clf.logits(x).argmax(1) == y).mean())


@pytest.mark.parametrize("name", list(SPECS))
def test_attack_fools_stays_in_budget_and_range(victim, name):
    clf, x, y = victim
    spec = SPECS[name]
    adv = _attack(clf, x, y, spec)
    assert adv.shape == x.shape and adv.dtype == np.float32 and np.isfinite(adv).all()
    assert adv.min() >= 0 and adv.max() <= 1
    delta = (adv - x).reshape(len(x), -1)
    if spec.minimum_norm:
        assert np.linalg.norm(delta, axis=1).max() > 0
    elif spec.norm == "linf":
        assert np.abs(delta).max() <= spec.eps + 1e-6
    else:
        assert np.linalg.norm(delta, axis=1).max() <= spec.eps + 1e-5
    assert _accuracy(clf, adv, y) < 1.0, f"{name} fooled no example of a model it starts at 100 % on"


@pytest.mark.parametrize("name", list(SPECS))
def test_attack_draws_only_from_its_generator(victim, name, reseed):
    clf, x, y = victim
    spec = SPECS[name]
    if name != "square":  # a few steps show where the random numbers come from
        spec = spec.replace(steps=min(spec.steps, 3))
    reseed(clf.backend, 11)  # (MindSpore's set_seed also seeds numpy's global state)
    legacy = np.random.get_state()[1].copy()
    first = _attack(clf, x, y, spec, seed=3)
    assert np.array_equal(np.random.get_state()[1], legacy), "the attack used numpy's global random state"
    reseed(clf.backend, 12)
    np.testing.assert_array_equal(first, _attack(clf, x, y, spec, seed=3), err_msg="same Generator, same examples")
    if name in RANDOMIZED:
        assert not np.array_equal(first, _attack(clf, x, y, spec, seed=4)), "another Generator, other draws"


def test_unknown_attack_name_is_an_error(victim):
    clf, x, y = victim
    spec = A.pgd(2).replace()
    object.__setattr__(spec, "name", "pgd2")  # a spec that escaped its checks
    with pytest.raises(ValueError, match="unknown attack 'pgd2'"):
        A.run(Oracle(clf.backend, clf.model), x, y, spec, np.random.default_rng(0))


@pytest.mark.parametrize("loss", [A.CE, A.CE_MEAN, KL, A.DLR, A.DLR_TARGETED, A.Loss("cw"), A.Loss("cw", 0.3),
                                  A.LOGITS], ids=str)
def test_oracle_losses_are_the_float64_formulas(victim, loss):
    clf, x, y = victim
    be, oracle = clf.backend, Oracle(clf.backend, clf.model)
    rng = np.random.default_rng(0)
    w = {"dlr-t": (y + 1) % 10, "cw": rng.uniform(0.5, 2, len(y)).astype(np.float32),
         "logits": rng.standard_normal((len(y), 10)).astype(np.float32),
         "kl": rng.standard_normal((len(y), 10)).astype(np.float32)}.get(loss.name, y)
    per, logits, grad = oracle.loss_grad(loss, be.ops.tensor(x), be.ops.tensor(y), be.ops.tensor(w), oracle.draw())
    z = be.ops.numpy(logits).astype(np.float64)
    np.testing.assert_allclose(be.ops.numpy(per), loss.reference(z, y, w), rtol=1e-4, atol=1e-5)
    # the input gradient is dL/dz (central differences of the float64 formula in logit space) times the Jacobian
    h, dz = 1e-6, np.zeros_like(z)
    for k in range(z.shape[1]):
        e = np.zeros_like(z)
        e[:, k] = h
        dz[:, k] = (loss.reference(z + e, y, w) - loss.reference(z - e, y, w)) / (2 * h)
    jac = be.ops.numpy(oracle.jacobian(be.ops.tensor(x), be.ops.tensor(y), oracle.draw())[1]).astype(np.float64)
    expected = np.einsum("nk,nk...->n...", dz, jac) / (len(y) if loss.mean else 1)
    np.testing.assert_allclose(be.ops.numpy(grad), expected, rtol=1e-3, atol=1e-5 * np.abs(expected).max())


def test_jacobian_rows_are_logit_gradients(victim):
    clf, x, y = victim
    be, oracle = clf.backend, Oracle(clf.backend, clf.model)
    logits, jac = oracle.jacobian(be.ops.tensor(x), be.ops.tensor(y), oracle.draw())
    jac = be.ops.numpy(jac)
    assert jac.shape == (len(x), 10, *x.shape[1:])
    for k in (0, 7):
        w = np.eye(10, dtype=np.float32)[np.full(len(x), k)]
        _, _, g = oracle.loss_grad(A.LOGITS, be.ops.tensor(x), be.ops.tensor(y), be.ops.tensor(w), oracle.draw())
        np.testing.assert_allclose(jac[:, k], be.ops.numpy(g), rtol=1e-4, atol=1e-6)


class _Recording(Oracle):
    """An Oracle that keeps every iterate it is asked about and the logits it answered."""

    def __init__(self, backend, model) -> None:
        super().__init__(backend, model)
        self.iterates, self.logits_seen = [], []

    def loss_grad(self, loss, x, y, w, draw):
        per, logits, grad = super().loss_grad(loss, x, y, w, draw)
        self.iterates.append(self.ops.numpy(x).copy())
        self.logits_seen.append(self.ops.numpy(logits).copy())
        return per, logits, grad


def test_early_stopping_pgd_moves_no_example_after_its_draw_misclassifies_it(victim):
    """The RNA supplement's early-stopping PGD: an example misclassified at iterate k is never moved after k;
    one never misclassified follows full PGD's path from the same start."""
    clf, x, y = victim
    be = clf.backend
    spec = A.pgd(10, 8 / 255, 2 / 255, early_stop=True)
    oracle = _Recording(be, clf.model)
    adv = be.ops.numpy(A.run(oracle, be.ops.tensor(x), be.ops.tensor(y), spec, np.random.default_rng(3)))
    full = be.ops.numpy(A.run(Oracle(be, clf.model), be.ops.tensor(x), be.ops.tensor(y), spec.replace(early_stop=False),
                              np.random.default_rng(3)))
    wrong = np.stack([z.argmax(1) != y for z in oracle.logits_seen])  # (steps, N): misclassified at iterate k
    first = np.where(wrong.any(0), wrong.argmax(0), -1)
    assert (first >= 0).any() and (first == -1).any(), first  # some stop, some run the whole way
    for n in range(len(y)):
        if first[n] >= 0:
            for later in oracle.iterates[first[n]:]:
                np.testing.assert_array_equal(later[n], oracle.iterates[first[n]][n])
            np.testing.assert_array_equal(adv[n], oracle.iterates[first[n]][n])
        else:
            np.testing.assert_allclose(adv[n], full[n], atol=1e-6)
    assert A.pgd(20, early_stop=True).label == "PGD-20-ES"
    with pytest.raises(ValueError, match="early_stop is PGD's option"):
        A.apgd("ce", 10).replace(early_stop=True)
