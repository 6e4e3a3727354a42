"""What every backend promises for training: each method's step is the paper's algorithm as the core writes it,
run on the draws the algorithm says (black-box AT attacks one path and trains another), and moves the weights.
One model per kind serves the module (MindSpore compiles each model's programs once)."""

import numpy as np
import pytest

from rna_core.attacks import pgd
from rna_core.backend import PARAMS, SGDConfig
from rna_core.evaluation import craft
from rna_core.methods import take_step
from rna_core.recipes import get_recipe

RECIPE = get_recipe("quick", train_attack=pgd(3, 8 / 255, 2 / 255), apart_groups=4)


@pytest.fixture(scope="module")
def rna(make_classifier):
    """A bn+in model and its optimizer, shared by the module's tests."""
    clf = make_classifier("bn+in")
    return clf, clf.backend.make_optimizer(clf.model, SGDConfig(0.1, 0.9, 5e-4))


def _step(rna, method, x, y, recipe=RECIPE, seed=7):
    """Run one step of ``method``; returns (paths of every forward, [(forwards before a parameter-gradient pass,
    its input)], the step's result)."""
    clf, opt = rna
    be = clf.backend
    seen, updates = [], []
    original = be.value_and_grad

    def spy(model, loss, xb, y, w, draw, wrt=(PARAMS,)):
        if PARAMS in wrt:  # the pass's own draw is taken before the call: the forwards before it are one fewer
            updates.append((len(seen) - 1, be.ops.numpy(xb)))
        return original(model, loss, xb, y, w, draw, wrt)

    be.value_and_grad = spy
    try:
        with clf.controller.observe(lambda d: seen.append(d.path.copy())):
            result = take_step(clf, opt, method, x, y, recipe, np.random.default_rng(seed), 0.1)
    finally:
        del be.value_and_grad
    return seen, updates, result


def test_blackbox_attacks_one_path_and_updates_another(rna, batch):
    x, y = batch
    clf = rna[0]
    before = clf.backend.get_state(clf.model)
    seen, updates, _ = _step(rna, "blackbox", x, y)
    steps = RECIPE.train_attack.steps
    assert len(seen) == steps + 1 and updates[0][0] == steps
    p_a, p = seen[0], seen[-1]
    assert all((q == p_a).all() for q in seen[:-1]), "the attack path must be held for every PGD step"
    assert (p != p_a).any(), "the update must use a freshly drawn path"
    after = clf.backend.get_state(clf.model)
    clf.backend.set_state(clf.model, before)
    clf.model.set_train(True)
    with clf.controller.fixed(p_a):
        adv = clf.backend.ops.numpy(craft(clf, x, y, RECIPE.train_attack, np.random.default_rng(7)))
    clf.backend.set_state(clf.model, after)
    np.testing.assert_array_equal(updates[0][1], adv, err_msg="the update's input is PGD on p_a")


def test_madry_attacks_and_updates_the_same_path(rna, batch):
    seen, _, _ = _step(rna, "madry", *batch)
    assert len(seen) == RECIPE.train_attack.steps + 1 and all((q == seen[0]).all() for q in seen)


def test_clean_step_is_one_forward(rna, batch):
    seen, updates, _ = _step(rna, "clean", *batch)
    assert len(seen) == 1 and updates[0][0] == 0


def test_eot_draws_a_fresh_path_every_forward(rna, batch):
    clf = rna[0]
    clf.model.set_train(False)
    start = clf.controller.rng.bit_generator.state
    seen = []
    with clf.controller.observe(lambda d: seen.append(d.path.copy())):
        craft(clf, *batch, pgd(2, eot=4), np.random.default_rng(0))
    replay = np.random.default_rng()
    replay.bit_generator.state = start
    assert len(seen) == 8 and all((p == clf.space.sample(replay)).all() for p in seen), "8 forwards, 8 new draws"


@pytest.mark.parametrize("method", ["clean", "madry", "blackbox", "sam", "apart", "apart-sam", "eot"])
def test_every_method_moves_the_weights(rna, batch, method):
    clf = rna[0]
    before = clf.backend.get_state(clf.model)
    _, _, result = _step(rna, method, *batch)
    after = clf.backend.get_state(clf.model)
    assert np.isfinite(float(result.loss)) and result.count == len(batch[1])
    assert 0 <= float(result.correct) <= result.count
    assert any(not np.array_equal(before[k], after[k]) for k in before if k.endswith("weight"))


def test_two_pass_methods_run_every_pass_of_a_step_on_one_path(rna, batch):
    for method in ("sam", "apart", "apart-sam"):
        seen = []
        for seed in range(3):
            seen += [tuple(p) for p in _step(rna, method, *batch, seed=seed)[0]]
        assert len(seen) == 6 and all(seen[2 * i] == seen[2 * i + 1] for i in range(3)), (method, seen)
        assert len(set(seen)) > 1, "each step draws a new path"


def test_apart_with_eps_zero_is_standard_training(make_classifier, batch):
    """eps = 0, n = 1, N = M: APART's update is standard training's (momentum, weight decay, running stats)."""
    recipe = get_recipe("quick-apart", apart_eps=0.0, apart_groups=1)
    a, b = make_classifier("bn"), make_classifier("bn")
    for c, method in ((a, "apart"), (b, "clean")):
        opt = c.backend.make_optimizer(c.model, SGDConfig(0.1, 0.9, 5e-4))
        for step in range(2):
            take_step(c, opt, method, *batch, recipe, np.random.default_rng(step), 0.1)
    sa, sb = a.backend.get_state(a.model), b.backend.get_state(b.model)
    for k in sa:
        np.testing.assert_allclose(sa[k], sb[k], rtol=1e-4, atol=1e-6, err_msg=k)


def test_ctrw_attacks_one_noise_draw_and_keeps_sigma_in_bounds(make_classifier, batch):
    recipe = get_recipe("quick-ctrw", train_attack=pgd(2, 8 / 255, 2 / 255), sigma_lower=20.0, sigma_upper=60.0)
    clf = make_classifier("bn", ctrw={"position": 0, "variant": "in", "image_size": [12, 12]})
    opt = clf.backend.make_optimizer(clf.model, SGDConfig(0.5, 0.9, 5e-4))
    seen = []
    with clf.controller.observe(lambda d: seen.append(d.noise.copy())):
        for step in range(3):
            del seen[:]
            take_step(clf, opt, "ctrw", *batch, recipe, np.random.default_rng(step), 0.5)
            assert len(seen) == 3 and all(np.array_equal(n, seen[0]) for n in seen[:-1])
            assert not np.array_equal(seen[-1], seen[0]), "the update uses a fresh noise draw"
            total = clf.sigmas()["ctrw.sigma"].sum()
            assert 20.0 - 1e-3 <= total <= 60.0 + 1e-3, f"step {step}: sum(sigma) = {total}"


def test_ctrw_constrains_sigma_before_the_first_forward(make_classifier, batch):
    recipe = get_recipe("quick-ctrw", train_attack=pgd(1, 8 / 255, 2 / 255), sigma_lower=20.0, sigma_upper=60.0)
    clf = make_classifier("bn", ctrw={"position": 0, "variant": "in", "image_size": [12, 12]})
    clf.set_sigmas({k: np.full_like(v, 1.0) for k, v in clf.sigmas().items()})  # sum = 144, above B = 60
    opt = clf.backend.make_optimizer(clf.model, SGDConfig(0.0, 0.0, 0.0))
    sums = []
    with clf.controller.observe(lambda _: sums.append(clf.sigmas()["ctrw.sigma"].sum())):
        take_step(clf, opt, "ctrw", *batch, recipe, np.random.default_rng(0), 0.0)
    assert sums and all(20.0 - 1e-3 <= s <= 60.0 + 1e-3 for s in sums), sums


@pytest.mark.parametrize("method", ["blackbox", "sam"])
def test_candidates_off_the_path_keep_weights_and_momentum(make_classifier, batch, method):
    """A step trains only the candidates its path selected: every other candidate keeps its weights and its
    momentum buffer (no weight decay, no momentum step), on every backend (torch's None-gradient semantics)."""
    from rna_core.models.graph import Norm, walk

    clf = make_classifier("bn+in", seed=3)
    be = clf.backend
    opt = be.make_optimizer(clf.model, SGDConfig(0.1, 0.9, 5e-2))
    slots = [(name, node.slot) for name, node in walk(clf.graph.root)
             if isinstance(node, Norm) and node.slot is not None]
    keys = [s.key for s in clf.controller.space.candidates[0]]
    recipe = get_recipe("quick", train_attack=pgd(1, 8 / 255, 2 / 255), sam_rho=0.05)
    seen = []
    for step in range(3):
        before, momentum = be.get_state(clf.model), be.get_state(clf.model, optimizer=opt)
        with clf.controller.observe(lambda d: seen.append(d.path.copy())):
            take_step(clf, opt, method, *batch, recipe, np.random.default_rng(step), 0.1)
        path = seen[-1]
        after, momentum_after = be.get_state(clf.model), be.get_state(clf.model, optimizer=opt)
        for name, slot in slots:
            for k, key in enumerate(keys):
                w = f"{name}.{key}.weight"
                moved = not np.array_equal(before[w], after[w])
                assert moved == (k == path[slot]), f"step {step}, {w}: moved={moved}, on the path={k == path[slot]}"
                if k != path[slot] and f"momentum.{w}" in momentum:
                    assert np.array_equal(momentum[f"momentum.{w}"], momentum_after[f"momentum.{w}"]), w
                if k != path[slot]:
                    assert (f"momentum.{w}" in momentum_after) == (f"momentum.{w}" in momentum), w


def test_eot_training_averages_the_attack_and_the_update_over_fresh_draws(make_classifier, batch):
    """``eot``: every attack gradient on K fresh draws, the update (1/M) sum_m grad CE on M more fresh draws, equal
    to that composition of the primitives replayed on the same draws and starts."""
    from rna_core.attacks import attack
    from rna_core.losses import CE_MEAN

    recipe = get_recipe("quick", method="eot", train_attack=pgd(2, 8 / 255, 2 / 255), eot_attack_draws=3,
                        eot_update_draws=2)
    clf = make_classifier("bn+in", seed=5)
    be, x, y = clf.backend, *batch
    start, state = clf.controller.rng.bit_generator.state, be.get_state(clf.model)
    seen = []
    opt = be.make_optimizer(clf.model, SGDConfig(0.1, 0.9, 5e-4))
    with clf.controller.observe(lambda d: seen.append(d.path.copy())):
        take_step(clf, opt, "eot", x, y, recipe, np.random.default_rng(4), 0.1)
    replay = np.random.default_rng()
    replay.bit_generator.state = start
    assert len(seen) == 2 * 3 + 2 and all((p == clf.space.sample(replay)).all() for p in seen), "fresh draws"
    ours = be.get_state(clf.model)
    be.set_state(clf.model, state)
    clf.controller.rng.bit_generator.state = start
    opt = be.make_optimizer(clf.model, SGDConfig(0.1, 0.9, 5e-4))
    clf.model.set_train(True)
    ops = be.ops
    adv = attack(be, clf.model, ops.tensor(x), ops.tensor(y), recipe.train_attack.replace(eot=3),
                 np.random.default_rng(4))
    grads = [be.value_and_grad(clf.model, CE_MEAN, adv, ops.tensor(y), ops.tensor(y), clf.controller.next_draw(),
                               (PARAMS,)) for _ in range(2)]
    be.update(clf.model, opt, [(0.5, g) for g in grads], 0.1)
    replayed = be.get_state(clf.model)
    for k in ours:
        np.testing.assert_allclose(ours[k], replayed[k], rtol=1e-6, atol=1e-7, err_msg=k)


def test_trades_on_a_deterministic_model_moves_the_weights_and_holds_one_draw_per_phase(make_classifier, batch):
    """TRADES (held to the authors' torch code in tests/torch/test_trades.py) runs on every backend; a BN model
    has one path, so GRAPH_MODE differentiates its loss of two forwards too."""
    recipe = get_recipe("quick", method="trades", train_attack=pgd(2, 8 / 255, 2 / 255))
    clf = make_classifier("bn")
    be = clf.backend
    before = be.get_state(clf.model)
    result = take_step(clf, be.make_optimizer(clf.model, SGDConfig(0.1, 0.9, 5e-4)), "trades", *batch, recipe,
                       np.random.default_rng(0), 0.1)
    after = be.get_state(clf.model)
    assert np.isfinite(float(result.loss)) and any(not np.array_equal(before[k], after[k]) for k in before)
