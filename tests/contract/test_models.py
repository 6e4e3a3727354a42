"""What every backend promises for models: every architecture builds and runs, canonical state round-trips in
place, bad state is refused with the entry named, and the sampling policies change the function as documented."""

import numpy as np
import pytest

from rna_core.controller import DrawController
from rna_core.losses import cross_entropy
from rna_core.paths import PathSpace


@pytest.mark.parametrize("arch, kw, size", [("small_cnn", {"width": 4}, 12), ("resnet18", {"width": 2}, 8),
                                            ("preact_resnet18", {"width": 2}, 8),
                                            ("resnet18_imagenet", {"width": 2}, 32)])
def test_architectures_build_and_classify(backend, make_classifier, arch, kw, size):
    if arch != "small_cnn" and backend.describe()["mode"] == "GRAPH_MODE":
        pytest.skip("ResNets compile in GRAPH_MODE in tests/parity; here PyNative builds them")
    clf = make_classifier("bn+in+gn:2+ln+bgn:2", name=arch, **kw)
    for training in (True, False):
        clf.model.set_train(training)
        out = clf.logits(np.random.default_rng(0).random((2, 1, size, size), dtype=np.float32))
        assert out.shape == (2, 10) and np.isfinite(out).all()


def test_state_round_trips_in_place(make_classifier, batch):
    a, b = make_classifier(seed=0), make_classifier(seed=1)
    state = a.backend.get_state(a.model)
    assert "layer1.0.norm.bn.running_mean" in state and "layer1.0.norm.in.weight" in state
    assert not any("num_batches" in k for k in state)
    b.backend.set_state(b.model, state)
    x = batch[0]
    path = np.zeros(a.space.num_layers, int)
    for c in (a, b):
        c.model.set_train(False)
    with a.controller.fixed(path), b.controller.fixed(path):
        np.testing.assert_array_equal(a.logits(x), b.logits(x))
    part = {"fc.bias": np.full(10, 0.5, np.float32)}
    b.backend.set_state(b.model, part, strict=False)
    assert np.array_equal(b.backend.get_state(b.model, ["fc.bias"])["fc.bias"], part["fc.bias"])


def test_bad_state_is_refused_with_the_entry_named(make_classifier):
    clf = make_classifier()
    state = clf.backend.get_state(clf.model)
    with pytest.raises(ValueError, match="missing"):
        clf.backend.set_state(clf.model, {k: v for k, v in state.items() if "fc" not in k})
    with pytest.raises(ValueError, match="shape of fc.weight"):
        clf.backend.set_state(clf.model, dict(state, **{"fc.weight": np.zeros((3, 3), np.float32)}))
    with pytest.raises(ValueError, match="unexpected"):
        clf.backend.set_state(clf.model, {"fc.weigth": np.zeros((10, 8), np.float32)}, strict=False)


def test_bn_names_are_a_subset_of_rna_names(make_classifier):
    bn, rna = make_classifier("bn"), make_classifier("bn+in")
    assert set(bn.backend.get_state(bn.model)) < set(rna.backend.get_state(rna.model))


def test_policies_change_the_function(make_classifier, batch):
    clf = make_classifier()
    clf.model.set_train(False)
    x = clf.backend.ops.tensor(batch[0])
    with clf.controller.frozen():
        a, b = clf.logits(x), clf.logits(x)
    np.testing.assert_array_equal(a, b)
    c, d = clf.logits(x), clf.logits(x)
    assert not np.array_equal(c, d), "resample: a fresh path per forward"


def test_path_space_must_fit_the_model(make_classifier):
    clf = make_classifier()
    with pytest.raises(ValueError, match="normalization slots"):
        clf.backend.build_model(clf.graph, DrawController(PathSpace.uniform("bn", 3), np.random.default_rng()), 0)


def test_state_written_after_a_step_reaches_every_program(make_classifier, batch):
    """Weights, learning rate and SAM's shifted weights written from the host after compiled steps ran are what
    the next forward, gradient and step use (MindSpore GRAPH_MODE once kept reading stale values)."""
    from rna_core.attacks import CE_MEAN, Oracle
    from rna_core.backend import SGDConfig
    from rna_core.methods import take_step
    from rna_core.recipes import get_recipe

    clf = make_classifier("bn+in")
    be, oracle = clf.backend, Oracle(clf.backend, clf.model)
    x, y = be.ops.tensor(batch[0]), be.ops.tensor(batch[1])
    opt = be.make_optimizer(clf.model, SGDConfig(0.1, 0.9, 5e-4))
    path = np.zeros(clf.space.num_layers, int)
    clf.model.set_train(True)
    before = be.get_state(clf.model)
    recipe, rng = get_recipe("quick"), np.random.default_rng(0)
    with clf.controller.fixed(path):
        grad0 = be.ops.numpy(oracle.loss_grad(CE_MEAN, x, y, y, oracle.draw())[2])
        take_step(clf, opt, "clean", *batch, recipe, rng, 0.1)
        be.set_state(clf.model, before)
        np.testing.assert_array_equal(be.ops.numpy(oracle.loss_grad(CE_MEAN, x, y, y, oracle.draw())[2]), grad0)
        weights = {k: v for k, v in be.get_state(clf.model).items() if "running" not in k}
        take_step(clf, opt, "clean", *batch, recipe, rng, 0.0)
        after = be.get_state(clf.model)
        assert all(np.array_equal(after[k], v) for k, v in weights.items()), "lr 0 must leave the weights alone"


def _pair_ce(ops, z, y, w, kappa):  # (GRAPH_MODE parses it: no import inside)
    return cross_entropy(ops, z[0], y, w, kappa) + cross_entropy(ops, z[1], y, w, kappa)


def test_a_loss_of_two_forwards_differentiates_both(make_classifier, batch):
    """``value_and_grad`` of a loss of the logits of two inputs on one draw (eval mode: each forward alone) is the
    sum of the two single-input gradients; on MindSpore GRAPH_MODE a model with RNA slots refuses it by name."""
    from rna_core.backend import INPUT, PARAMS
    from rna_core.losses import CE, LOSSES, Loss, LossKind, cross_entropy_np, register_loss

    if "pair-ce" not in LOSSES:
        register_loss(LossKind("pair-ce", _pair_ce, lambda z, y, w, k: cross_entropy_np(z[0], y) +
                               cross_entropy_np(z[1], y)))
    clf = make_classifier("bn")
    be, ops = clf.backend, clf.backend.ops
    x, y = batch
    x0, x1, yb = ops.tensor(x), ops.tensor(x[::-1].copy()), ops.tensor(y)
    clf.model.set_train(False)
    draw = clf.controller.next_draw()
    pair = be.value_and_grad(clf.model, Loss("pair-ce"), (x0, x1), yb, yb, draw, (PARAMS, INPUT))
    singles = [be.value_and_grad(clf.model, CE, t, yb, yb, draw, (PARAMS, INPUT)) for t in (x0, x1)]
    for got, a, b in zip(pair.params, singles[0].params, singles[1].params, strict=True):
        np.testing.assert_allclose(ops.numpy(got), ops.numpy(a) + ops.numpy(b), rtol=1e-4, atol=1e-6)
    for got, single in zip(pair.input, singles, strict=True):
        np.testing.assert_allclose(ops.numpy(got), ops.numpy(single.input), rtol=1e-4, atol=1e-7)
    if be.describe()["mode"] == "GRAPH_MODE":
        rna = make_classifier("bn+in")
        with pytest.raises(NotImplementedError, match="switch called more than once"):
            be.value_and_grad(rna.model, Loss("pair-ce"), (x0, x1), yb, yb, rna.controller.next_draw())
