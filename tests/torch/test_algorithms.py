"""RNA's black-box adversarial training attacks one path and trains another (Algorithm 1)."""

import numpy as np
import pytest
import torch

from rna_core.algorithms import ALGORITHMS
from rna_core.attacks import pgd
from rna_core.backend import SGDConfig
from rna_core.backends.torch.layers import NormSlot
from rna_core.classifier import build_classifier
from rna_core.evaluation import craft
from rna_core.recipes import get_recipe

RECIPE = get_recipe("quick", train_attack=pgd(3, 8 / 255, 2 / 255))


def _setup(seed=0):
    clf = build_classifier({"name": "resnet18", "num_classes": 10, "in_channels": 1, "width": 4}, "bn+in", True,
                           "torch", np.random.default_rng(seed))
    opt = clf.backend.make_optimizer(clf.model, SGDConfig(0.1, 0.9, 5e-4))
    rng = np.random.default_rng(1)
    x = rng.random((8, 1, 12, 12), dtype=np.float32)
    y = rng.integers(0, 10, 8)
    return clf, opt, x, y


def _run(method):
    clf, opt, x, y = _setup()
    before = {k: v.detach().clone() for k, v in clf.model.state_dict().items()}
    seen, updates = [], []
    original = clf.backend.train_step

    def spy(model, optimizer, xb, yb):
        updates.append((len(seen), xb.detach().clone()))
        return original(model, optimizer, xb, yb)

    clf.backend.train_step = spy
    try:
        with clf.controller.observe(lambda d: seen.append(d.path.copy())):
            ALGORITHMS[method](clf, opt, x, y, RECIPE, np.random.default_rng(7))
    finally:
        del clf.backend.train_step
    return clf, x, y, before, seen, updates


def test_blackbox_attacks_one_path_and_updates_another():
    clf, x, y, before, seen, updates = _run("blackbox")
    assert len(seen) == RECIPE.train_attack.steps + 1 and updates[0][0] == RECIPE.train_attack.steps
    p_a, p = seen[0], seen[-1]
    assert all((q == p_a).all() for q in seen[:-1]), "the attack path must be held for every PGD step"
    assert (p != p_a).any(), "the update must use a freshly drawn path"

    # the adversarial example is PGD on path p_a from the same random start
    fresh, _, _, _ = _setup()
    fresh.model.load_state_dict(before)
    fresh.backend.set_training(fresh.model, True)
    with fresh.controller.fixed(p_a):
        adv = craft(fresh, x, y, RECIPE.train_attack, np.random.default_rng(7))
    torch.testing.assert_close(updates[0][1], adv, rtol=0, atol=0)

    # the update trains path p: candidates off p get no gradient, so SGD leaves them untouched
    after = clf.model.state_dict()
    for m_name, m in clf.model.named_modules():
        if not isinstance(m, NormSlot):
            continue
        for k, key in enumerate(m.keys):
            w = f"{m_name}.{key}.weight"
            changed = not torch.equal(before[w], after[w])
            assert changed == (k == p[m.slot]), f"{w}: changed={changed}, on path p={k == p[m.slot]}"


def test_madry_attacks_and_updates_the_same_path():
    _, _, _, _, seen, _ = _run("madry")
    assert len(seen) == RECIPE.train_attack.steps + 1
    assert all((q == seen[0]).all() for q in seen)


def test_clean_step_one_forward():
    _, _, _, _, seen, updates = _run("clean")
    assert len(seen) == 1 and updates[0][0] == 0


@pytest.mark.parametrize("steps", [0, 1, 5])
def test_pgd_stays_in_the_ball(steps):
    clf, _, x, y = _setup()
    clf.backend.set_training(clf.model, False)
    spec = pgd(steps, 8 / 255, 2 / 255)
    with clf.controller.frozen():
        adv = clf.backend.numpy(craft(clf, x, y, spec, np.random.default_rng(0)))
    assert np.abs(adv - x).max() <= spec.eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    again = craft(clf, x, y, spec, np.random.default_rng(0))
    if steps == 0:
        np.testing.assert_array_equal(adv, np.clip(x + spec.random_start_for(x, np.random.default_rng(0)), 0, 1))
    assert again.shape == adv.shape


def test_pgd_raises_the_loss_on_its_path():
    clf, _, x, y = _setup()
    clf.backend.set_training(clf.model, False)
    loss = torch.nn.functional.cross_entropy
    with clf.controller.frozen():
        adv = craft(clf, x, y, pgd(10, 16 / 255, 4 / 255), np.random.default_rng(0))
        with torch.no_grad():
            clean = loss(clf.model(clf.backend.tensor(x)), clf.backend.tensor(y))
            attacked = loss(clf.model(adv), clf.backend.tensor(y))
    assert attacked > clean


def test_eot_draws_a_fresh_path_every_forward():
    clf, _, x, y = _setup()
    clf.backend.set_training(clf.model, False)
    seen = []
    with clf.controller.observe(lambda d: seen.append(tuple(d.path))):
        craft(clf, x, y, pgd(2, eot=4), np.random.default_rng(0))
    assert len(seen) == 8 and len(set(seen)) == 8
