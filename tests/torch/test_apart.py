"""APART, APART-SAM and SAM on torch: Eq. 3 against float64 numpy, the perturbation gradient against finite
differences, and each training step against a direct computation of Algorithm 1's weighted gradient."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import rna_core
from rna_core.apart import BNPerturbation, adversarial_delta
from rna_core.apps.apart_report import statistics_attack, statistics_shift
from rna_core.backend import DELTA, PARAMS, SGDConfig
from rna_core.backends.torch.layers import EPS, MOMENTUM, BatchNorm, DrawState, PerturbedBN
from rna_core.classifier import build_classifier
from rna_core.data import load_dataset
from rna_core.data.loader import batches
from rna_core.losses import CE_MEAN
from rna_core.methods import take_step
from rna_core.recipes import get_recipe

LR = 0.5


def _setup(norms="bn", seed=0, batch=32):
    arch = {"name": "small_cnn", "num_classes": 10, "in_channels": 3, "width": 8}
    clf = build_classifier(arch, norms, True, "torch", np.random.default_rng(seed), seed)
    rng = np.random.default_rng(seed + 1)
    return clf, rng.random((batch, 3, 12, 12), dtype=np.float32), rng.integers(0, 10, batch)


def _params(clf):
    return {k: v.detach().clone() for k, v in clf.model.named_parameters()}


def _buffers(clf):
    return {k: v.detach().clone() for k, v in clf.model.named_buffers()}


def _gradient(clf, x, y, bn):
    """The parameter gradients (numpy-free: torch tensors) and the BN-perturbation gradient (numpy) of the mean CE
    on the next draw, every BN layer running Eq. 3 as ``bn`` says."""
    be = clf.backend
    xb, yb = (be.ops.tensor(a) if isinstance(a, np.ndarray) else a for a in (x, y))
    g = be.value_and_grad(clf.model, CE_MEAN, xb, yb, yb, clf.controller.next_draw().perturbed(bn), (PARAMS, DELTA))
    g.delta = be.ops.numpy(g.delta)
    return g


def _plain_grad(clf, x, y):
    """Standard training's gradient: autograd through the model's own BN (F.batch_norm), no APART code."""
    clf.model.train()
    loss = F.cross_entropy(clf.model(torch.tensor(x)), torch.tensor(y))
    names = [k for k, p in clf.model.named_parameters()]
    return dict(zip(names, torch.autograd.grad(loss, list(clf.model.parameters())), strict=True))


@pytest.mark.parametrize("groups", [1, 4])
def test_perturbed_bn_is_eq3_with_per_group_statistics(groups):
    rng = np.random.default_rng(groups)
    layer = BatchNorm(6)
    gamma, beta = rng.normal(1, 0.3, 6), rng.normal(0, 0.3, 6)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(gamma))
        layer.bias.copy_(torch.tensor(beta))
    state = DrawState(0, 0, 12)
    layer.attach(state, 0)
    delta = rng.uniform(-0.3, 0.3, 12)
    state.bn = (torch.tensor(delta, dtype=torch.float32), groups, groups == 1)
    x = rng.normal(1, 2, (8, 6, 5, 4))
    y = layer.train()(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    d_mu, d_sigma = delta[:6].reshape(1, 6, 1, 1), delta[6:].reshape(1, 6, 1, 1)
    ref = np.empty_like(x)
    for j in range(groups):  # group j = samples j, j + n, j + 2n, ...
        xs = x[j::groups]
        mu, var = xs.mean((0, 2, 3), keepdims=True), xs.var((0, 2, 3), keepdims=True)
        ref[j::groups] = (gamma.reshape(1, 6, 1, 1) * (1 + d_sigma) * (xs - (1 + d_mu) * mu) / np.sqrt(var + EPS)
                          + beta.reshape(1, 6, 1, 1))
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    if groups == 1:  # tracked: the standard BN update with the unbiased variance
        n = x.size / 6
        np.testing.assert_allclose(layer.running_mean.numpy(), MOMENTUM * x.mean((0, 2, 3)), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.running_var.numpy(), 1 - MOMENTUM + MOMENTUM * x.var((0, 2, 3)) * n / (n - 1),
                                   rtol=1e-5)
    else:  # untracked: running statistics untouched
        assert torch.equal(layer.running_mean, torch.zeros(6)) and torch.equal(layer.running_var, torch.ones(6))
    with pytest.raises(RuntimeError, match="training mode"):
        layer.eval()(torch.tensor(x, dtype=torch.float32))


@pytest.mark.parametrize("groups", [1, 4])
def test_perturbation_gradient_matches_finite_differences(groups):
    """Gradient.delta is dL/d delta of the loss as a function of the flat perturbation vector: float64 model,
    central differences with a tiny h (the loss is strongly curved in d_mu where |mu| >> sigma); delta and h are
    dyadic so that delta +- h survives the float32 crossing of the interface exactly."""
    clf, x, y = _setup()
    be, layout = clf.backend, clf.bn_layout
    assert layout.names == ("norm1.bn", "layer1.0.norm.bn", "layer2.0.norm.bn", "layer2.1.norm.bn")
    clf.model.double()
    clf.model.set_train(True)
    rng = np.random.default_rng(5)
    delta = rng.integers(-6, 7, layout.size) / 64
    xb, yb = be.ops.tensor(x.astype(np.float64)), be.ops.tensor(y)

    def loss(d):
        draw = clf.controller.next_draw().perturbed(BNPerturbation(d, groups, False))
        return float(F.cross_entropy(be.logits(clf.model, xb, draw), yb))

    with clf.controller.frozen():
        before = _buffers(clf)
        g = _gradient(clf, xb, yb, BNPerturbation(delta, groups, False))
        assert all(torch.equal(before[k], v) for k, v in _buffers(clf).items()), "an untracked pass kept the stats"
        h = 2.0**-20
        for k in rng.choice(layout.size, 16, replace=False):
            e = np.zeros(layout.size)
            e[k] = h
            fd = (loss(delta + e) - loss(delta - e)) / (2 * h)
            assert abs(fd - g.delta[k]) <= 1e-4 * np.abs(g.delta).max(), (k, fd, g.delta[k])


@pytest.mark.parametrize("groups", [1, 4])
def test_perturbed_bn_backward_passes_gradcheck(groups):
    """The hand-written backward of Eq. 3 (input, gamma, beta, d_mu, d_sigma; gradients through the per-group
    batch statistics) against float64 finite differences, for inputs with |mu| ~ sigma and nonzero deltas."""
    gen = torch.Generator().manual_seed(groups)
    args = [torch.randn(8, 3, 4, 5, generator=gen, dtype=torch.float64) * 2 + 1,
            torch.randn(3, generator=gen, dtype=torch.float64), torch.randn(3, generator=gen, dtype=torch.float64),
            (torch.rand(3, generator=gen, dtype=torch.float64) - 0.5) / 5,
            (torch.rand(3, generator=gen, dtype=torch.float64) - 0.5) / 5]
    args = [a.requires_grad_() for a in args]
    assert torch.autograd.gradcheck(lambda *a: PerturbedBN.apply(*a, groups)[0], args)


@pytest.mark.parametrize("ratio, groups", [(1.0, 4), (0.5, 2)])
def test_apart_step_is_the_weighted_two_pass_gradient(ratio, groups):
    """Algorithm 1 computed directly: g_phi by plain autograd; theta = eps sign(g_theta); h_phi as the mean over
    the n groups S_j, each run through the network on its own (statistics over S_j only); the update uses
    M/(M+N) g_phi + N/(M+N) h_phi. Running statistics are those of pass 1 alone."""
    recipe = get_recipe("quick-apart", apart_eps=0.2, apart_ratio=ratio, apart_groups=groups)
    clf, x, y = _setup()
    ref, _, _ = _setup()
    be = clf.backend
    opt = be.make_optimizer(clf.model, SGDConfig(LR, 0.0, 0.0))
    path = clf.controller.draw()
    with clf.controller.fixed(path):
        take_step(clf, opt, "apart", x, y, recipe, np.random.default_rng(7), LR)
    m, n = len(x), int(ratio * len(x))
    s = np.random.default_rng(7).permutation(m)[:n]
    with ref.controller.fixed(path):
        w0 = _params(ref)
        g_phi = _plain_grad(ref, x, y)
        for k, v in _buffers(ref).items():  # pass 1's running statistics are the only update of the step
            torch.testing.assert_close(_buffers(clf)[k], v, rtol=1e-5, atol=1e-6, msg=f"pass 2 changed {k}")
        zero = BNPerturbation(np.zeros(ref.bn_layout.size), 1, False)
        g_theta = _gradient(ref, x, y, zero)
        theta = adversarial_delta(g_theta.delta, 0.2)
        assert np.isin(np.abs(theta), [0, np.float32(0.2)]).all() and np.count_nonzero(theta) > 0.9 * theta.size
        names = [k for k, _ in ref.model.named_parameters()]
        h_phi = {k: torch.zeros_like(v) for k, v in w0.items()}
        for j in range(groups):
            sj = s[j::groups]
            gj = _gradient(ref, x[sj], y[sj], BNPerturbation(theta, 1, False))
            for k, gk in zip(names, gj.params, strict=True):
                h_phi[k] += gk / groups
    got = _params(clf)
    for k in w0:
        expected = w0[k] - LR * (m / (m + n) * g_phi[k] + n / (m + n) * h_phi[k])
        torch.testing.assert_close(got[k], expected, rtol=1e-4, atol=2e-6, msg=f"parameter {k}")
    assert not torch.allclose(got["fc.weight"], w0["fc.weight"] - LR * g_phi["fc.weight"], atol=1e-5), \
        "the perturbed pass must change the update"


@pytest.mark.parametrize("method", ["sam", "apart-sam"])
def test_sam_steps_match_a_direct_computation(method):
    """SAM: w <- w - lr grad L(w + rho g0 / ||g0||). APART-SAM: pass 2 runs at w + rho g_phi / ||g_phi|| with theta
    from pass 1, the update (at w) weights g_phi and h_phi as APART does."""
    rho = 0.5
    recipe = get_recipe("quick-apart", method=method, sam_rho=rho, apart_eps=0.1, apart_groups=2)
    clf, x, y = _setup()
    ref, _, _ = _setup()
    be = clf.backend
    opt = be.make_optimizer(clf.model, SGDConfig(LR, 0.0, 0.0))
    with clf.controller.frozen():
        take_step(clf, opt, method, x, y, recipe, np.random.default_rng(3), LR)
    w0 = _params(ref)
    names = list(w0)
    g0 = _plain_grad(ref, x, y)
    norm = torch.sqrt(sum((g**2).sum() for g in g0.values()))
    zero = np.zeros(ref.bn_layout.size)
    if method == "apart-sam":
        theta = adversarial_delta(_gradient(ref, x, y, BNPerturbation(zero)).delta, 0.1)
        s = np.random.default_rng(3).permutation(len(x))
        xs, ys, bn = x[s], y[s], BNPerturbation(theta, 2, False)
    else:
        xs, ys, bn = x, y, BNPerturbation(zero, 1, False)
    with torch.no_grad():
        for k, p in ref.model.named_parameters():
            p.add_(rho * g0[k] / norm)
    g1 = dict(zip(names, _gradient(ref, xs, ys, bn).params, strict=True))
    got = _params(clf)
    for k in names:
        g = g1[k] if method == "sam" else 0.5 * g0[k] + 0.5 * g1[k]
        torch.testing.assert_close(got[k], w0[k] - LR * g, rtol=1e-4, atol=2e-6, msg=f"parameter {k}")


def test_apart_needs_bn_layers_and_a_divisible_batch():
    clf, x, y = _setup("in")
    opt = clf.backend.make_optimizer(clf.model, SGDConfig(0.1))
    with pytest.raises(ValueError, match="needs BN layers"):
        take_step(clf, opt, "apart", x, y, get_recipe("quick-apart"), np.random.default_rng(0), 0.1)
    with pytest.raises(ValueError, match="apart_groups"):
        get_recipe("quick-apart", batch_size=100, apart_groups=16)


@pytest.mark.parametrize("method", ["sam", "apart", "apart-sam"])
def test_train_runs_each_method(method, tmp_path):
    res = rna_core.train("quick-apart", "torch", tmp_path / method, progress=False, method=method, arch="small_cnn",
                         width=8, epochs=1, train_samples=128, batch_size=32, apart_groups=4, eval_samples=64)
    assert 0 <= res.final["clean"] <= 1 and res.final["attacks"] == {} and res.final["protocol"] == "white-box"
    assert json.loads((tmp_path / method / "metrics.json").read_text())["test"]["clean"] == res.final["clean"]


def test_reports_write_fig1_and_fig2(tmp_path):
    clf = build_classifier({"name": "small_cnn", "num_classes": 10, "in_channels": 1, "width": 8}, "bn", True,
                           "torch", np.random.default_rng(0))
    opt = clf.backend.make_optimizer(clf.model, SGDConfig(0.05))
    train = load_dataset("bundled", "train").subset(256)
    test = load_dataset("bundled", "test").subset(100)
    for x, y in batches(train, 32, np.random.default_rng(0), shuffle=True):
        take_step(clf, opt, "clean", x, y, get_recipe("quick-standard"), np.random.default_rng(0), 0.05)
    state = clf.backend.get_state(clf.model)
    fig1 = statistics_attack(clf, train, [0.1, 0.5], [1, 4], tmp_path, batch_size=32)
    fig2 = statistics_shift({"a": clf}, test, [0.2, 0.5], tmp_path)
    assert all(f.endswith((".json", ".png")) for f in fig1["files"] + fig2["files"])
    assert len(fig1["rows"]) == 2 + 2 * (2 + 2) and len(fig2["rows"]) == 2 * 3
    acc = {(r["kind"], r["groups"], r["eps"]): r["accuracy"] for r in fig1["rows"]}
    assert acc[("apart", 1, 0.5)] < acc[("none", 1, 0.0)], "APART's perturbation must hurt the model"
    shift = {(r["statistic"], r["eps"]): r["accuracy"] for r in fig2["rows"]}
    assert shift[("mean", 0.0)] == shift[("std", 0.0)]
    assert all(np.array_equal(v, state[k]) for k, v in clf.backend.get_state(clf.model).items()), "state restored"
