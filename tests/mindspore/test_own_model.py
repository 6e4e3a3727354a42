"""A user's own MindSpore cell, in both modes: ``rna_core.evaluate`` attacks a deterministic cell white-box and
says so, detects a cell with dropout at inference as random (EOT and fresh answers, the held-draw protocols named
as skipped); ``rna_core.mindspore.randomize`` makes a cell's BN layers RNA slots that rna-core trains (one compiled
graph for every path), runs APART on it as on the built-in graph, adds CTRW's random weight, and takes fp16; a
mindcv model goes the same way."""

from __future__ import annotations

import mindspore as ms
import pytest
from mindspore import nn, ops

import rna_core
from rna_core import pgd
from rna_core.data import load_bundled
from rna_core.registry import get_backend


class Linear(nn.Cell):
    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.flat = nn.Flatten()
        self.body = nn.Dense(28 * 28, 32)
        self.head = nn.Dense(32, 10)
        self.p = dropout

    def construct(self, x):
        h = ops.relu(self.body(self.flat(x)))
        if self.p > 0:
            h = ops.dropout(h, p=self.p, training=True)
        return self.head(h)


@pytest.mark.parametrize("mode", ["graph", "pynative"])
def test_evaluate_any_cell_names_its_randomness(mode):
    be = get_backend("mindspore", mode=mode)
    data = load_bundled("test").subset(24)
    det = rna_core.evaluate(Linear(), data, [pgd(2)], backend=be, progress=False)
    assert det["randomness"] == "none" and det["protocol"] == "white-box" and "white-box" in det["note"]
    assert 0 <= det[f"{pgd(2).label}/white-box"] <= det["clean"]
    own = rna_core.evaluate(Linear(0.3), data, [pgd(2)], "both", eot=2, answers=3, backend=be, progress=False)
    assert own["randomness"] == "own" and own["protocol"] == "eot"
    assert f"{pgd(2).label}/eot" in own and not any(k.endswith("/paper") for k in own)
    assert set(own["protocols_skipped"]) == {"paper", "transfer", "oracle"}
    with pytest.raises(TypeError, match="neither a torch nn.Module nor a MindSpore nn.Cell"):
        rna_core.evaluate(object(), data, [pgd(2)], progress=False)


class MsBlock(nn.Cell):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, pad_mode="pad", padding=1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, pad_mode="pad", padding=1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.has_short = stride != 1 or cin != cout
        if self.has_short:
            self.shortcut = nn.SequentialCell([nn.Conv2d(cin, cout, 1, stride, pad_mode="valid"),
                                               nn.BatchNorm2d(cout)])

    def construct(self, x):
        out = ops.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return ops.relu(out + (self.shortcut(x) if self.has_short else x))


class MsResNet18(nn.Cell):
    """The torch tests' hand-written ResNet-18, written the MindSpore way."""

    def __init__(self, width: int = 4, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, pad_mode="pad", padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        cin, stages = width, []
        for mult, stride in zip((1, 2, 4, 8), (1, 2, 2, 2), strict=True):
            blocks = [MsBlock(cin, width * mult, stride), MsBlock(width * mult, width * mult, 1)]
            stages.append(nn.SequentialCell(blocks))
            cin = width * mult
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Dense(cin, num_classes)

    def construct(self, x):
        out = ops.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(out.mean(axis=(2, 3)))


def test_a_refused_randomize_leaves_the_cell_unchanged():
    """Every check runs before the cell is touched: after a refusal it has its BatchNorm2d cells, weights and no
    attribute of rna-core's, and a corrected call works."""
    import numpy as np

    from rna_core.mindspore import randomize

    cell = MsResNet18(in_channels=1)
    before = {k: v.asnumpy().copy() for k, v in cell.parameters_and_names()}
    kinds = [type(c) for _, c in cell.cells_and_names()]
    with pytest.raises(ValueError, match="no sub-cell of that name"):
        randomize(cell, "bn+in", random_weight="nope")
    with pytest.raises(ValueError, match="compiled model cannot"):
        randomize(cell, "bn+in", random_weight="input", input_shape=(1, 28, 28), graph_mode=True)
    assert [type(c) for _, c in cell.cells_and_names()] == kinds and not hasattr(cell, "rna")
    assert all(np.array_equal(before[k], v.asnumpy()) for k, v in cell.parameters_and_names())
    assert randomize(cell, "bn+in").rna.space.num_layers == 20


@pytest.mark.parametrize("mode", ["graph", "pynative"])
def test_randomized_cell_draws_per_forward_trains_and_compiles_once(mode, tmp_path):
    """A user's cell randomized for the backend's mode: the BN candidate keeps the layer's statistics, eager calls
    draw a fresh path each, rna-core trains it (only the selected candidates move), and compiled, one graph serves
    every path of the evaluation."""
    import numpy as np
    from mindspore import Tensor

    from rna_core.mindspore import randomize

    graph = mode == "graph"
    be = get_backend("mindspore", mode=mode)
    plain = MsResNet18(in_channels=1)
    plain.bn1.moving_mean.set_data(Tensor(np.full(4, 0.5, np.float32)))
    cell = randomize(plain, "bn+in", seed=0, graph_mode=graph)
    assert np.allclose(cell.bn1.bn.running_mean.asnumpy(), 0.5) and cell.rna.space.num_layers == 20
    x = Tensor(np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32))
    if not graph:
        cell.set_train(False)
        paths = []
        with cell.rna_controller.observe(lambda d: paths.append(tuple(d.path))):
            a, b = cell(x).asnumpy(), cell(x).asnumpy()
        assert len(set(paths)) == 2 and not np.array_equal(a, b)
    with pytest.raises(ValueError, match="randomized for"):
        rna_core.evaluate(cell, load_bundled("test").subset(8), [], backend=get_backend(
            "mindspore", mode="pynative" if graph else "graph"), progress=False)
    before = {k: v.asnumpy().copy() for k, v in cell.parameters_and_names()}
    result = rna_core.train("quick", backend=be, model=cell, out_dir=tmp_path, progress=False, epochs=1,
                            train_samples=128, eval_samples=32, eval_attack=pgd(2), eval_answers=2, eval_eot=2)
    assert result.final["randomness"] == "rna-core" and any(k.endswith("/paper") for k in result.final)
    moved = {k for k, v in cell.parameters_and_names() if not np.array_equal(v.asnumpy(), before[k])}
    assert any(".bn." in k for k in moved) and any(".in." in k for k in moved)
    if graph:  # more evaluation on fresh paths compiles nothing new
        from mindspore.graph import api as ms_api

        clf = result.classifier
        compiled = len(ms_api.ms_compile_cache)
        paths = set()
        with clf.controller.observe(lambda d: paths.add(tuple(d.path))):
            for _ in range(3):
                clf.logits(np.zeros((32, 1, 28, 28), np.float32))
        assert len(paths) == 3 and len(ms_api.ms_compile_cache) == compiled


@pytest.mark.parametrize("mode", ["graph", "pynative"])
def test_apart_step_on_a_users_bn_cell_equals_the_builtin_one(mode):
    """APART and APART-SAM on a hand-written BN ResNet-18 cell made perturbable by ``randomize(c, "bn")``: the same
    two-pass update as on the built-in graph with the same weights, batch and random numbers."""
    import numpy as np

    from rna_core.backend import SGDConfig
    from rna_core.classifier import adopt, build_classifier
    from rna_core.methods import take_step
    from rna_core.mindspore import randomize
    from rna_core.recipes import get_recipe

    be = get_backend("mindspore", mode=mode)
    builtin = build_classifier({"name": "resnet18", "num_classes": 10, "in_channels": 3, "width": 4}, "bn", True,
                               be, np.random.default_rng(0), 0)
    mine = adopt(randomize(MsResNet18(), "bn", graph_mode=mode == "graph"), 10, 3, backend=be)
    theirs, ours = be.get_state(builtin.model), be.get_state(mine.model)
    assert [v.shape for v in theirs.values()] == [v.shape for v in ours.values()]
    be.set_state(mine.model, dict(zip(ours, theirs.values(), strict=True)))
    assert mine.bn_layout.size == builtin.bn_layout.size and not mine.controller.is_random
    plain = MsResNet18()
    plain.bn1.moving_mean.set_data(ms.Tensor(np.full(4, 0.5, np.float32)))
    na = randomize(plain, "bn/na+in", graph_mode=mode == "graph")  # no affine: the statistics, the layout
    assert np.allclose(na.bn1.bn_na.running_mean.asnumpy(), 0.5)
    assert na.rna.bn_layout.size == mine.bn_layout.size
    recipe = get_recipe("quick-apart", batch_size=16, apart_groups=4)
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 3, 16, 16), dtype=np.float32), rng.integers(0, 10, 16)
    for sam in (False, True) if mode == "graph" else (False,):  # SAM's weight shift is the same code in both
        for clf in (builtin, mine):
            opt = be.make_optimizer(clf.model, SGDConfig(0.1))
            res = take_step(clf, opt, "apart-sam" if sam else "apart", x, y, recipe, np.random.default_rng(1), 0.1)
            assert np.isfinite(float(res.loss))
        for a, b in zip(be.get_state(builtin.model).values(), be.get_state(mine.model).values(), strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_ctrw_random_weight_on_a_users_cell(tmp_path):
    """CTRW's random weight before the head or the first convolution of a user's cell: fresh noise in every
    forward (compiled: one graph), the first convolution's input weighted as the eager "input" hook weights it,
    bounds scaled to its size, and ``method="ctrw"`` keeps sum(sigma) inside them while training."""
    import numpy as np
    from mindspore import Tensor

    from rna_core.classifier import adopt
    from rna_core.mindspore import randomize

    graph = get_backend("mindspore", mode="graph")
    head = adopt(randomize(MsResNet18(in_channels=1), None, random_weight="fc", graph_mode=True), 10, 1,
                 backend=graph)
    assert head.model.module.rna_random_weight.sigma.shape == (32,) and head.sigma_names == [
        "rna_random_weight.sigma"]
    x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    head.model.set_train(False)
    assert not np.array_equal(*(head.logits(x) for _ in range(2)))
    eager = randomize(MsResNet18(in_channels=1), "bn+in", random_weight="input", input_shape=(1, 28, 28), seed=3)
    first = randomize(MsResNet18(in_channels=1), "bn+in", random_weight="conv1", input_shape=(1, 28, 28), seed=3)
    for (_, a), (_, b) in zip(eager.parameters_and_names(), first.parameters_and_names(), strict=True):
        b.set_data(a.value().copy())
    eager.set_train(False)
    first.set_train(False)
    np.testing.assert_allclose(first(Tensor(x)).asnumpy(), eager(Tensor(x)).asnumpy(), rtol=1e-5, atol=1e-6)
    lo, hi = first.rna.sigma_bounds
    assert (lo, hi) == pytest.approx((1000 * 784 / 3072, 2400 * 784 / 3072))
    model = randomize(MsResNet18(in_channels=1), "bn+in", random_weight="conv1", input_shape=(1, 28, 28),
                      graph_mode=True)
    rna_core.train("quick-ctrw", backend=graph, model=model, out_dir=tmp_path, progress=False, epochs=1,
                   train_samples=128, eval_samples=32, eval_attack=None, eval_answers=2, sigma_lower=lo,
                   sigma_upper=hi)
    assert lo - 1e-3 <= float(model.rna_random_weight.sigma.asnumpy().sum()) <= hi + 1e-3
    with pytest.raises(ValueError, match="compiled model cannot run"):
        randomize(MsResNet18(), random_weight="input", input_shape=(3, 32, 32), graph_mode=True)
    with pytest.raises(ValueError, match="must be a linear"):
        randomize(MsResNet18(), None, random_weight="bn1")
    with pytest.raises(ValueError, match="differ in shape"):
        randomize(MsResNet18(in_channels=1), None, random_weight="conv1", input_shape=(1, 32, 32))(Tensor(x))


def test_mindcv_model_randomized_and_trained(tmp_path):
    """The README's mindcv snippet, small: a mindcv ResNet-18 behind input normalization randomized (its 20 BN cells
    become slots, the BN candidate keeping their statistics) and trained by rna-core (one step, eagerly, to keep the
    test short; evaluation takes any cell, as tested above)."""
    import numpy as np

    models = pytest.importorskip("mindcv.models")
    from rna_core.backends.mindspore.network import Normalize
    from rna_core.mindspore import randomize

    net = models.create_model("resnet18", num_classes=10, in_channels=1)
    moving = net.bn1.moving_variance.asnumpy().copy()
    cell = nn.SequentialCell([Normalize((0.286,), (0.353,)), net])
    randomize(cell, "bn+in", seed=0)
    assert cell.rna.space.num_layers == 20 and np.array_equal(net.bn1.bn.running_var.asnumpy(), moving)
    before = net.conv1.weight.asnumpy().copy()
    result = rna_core.train("quick", backend=get_backend("mindspore", mode="pynative"), model=cell, out_dir=tmp_path,
                            progress=False, epochs=1, train_samples=16, batch_size=16, train_attack=pgd(1),
                            eval_samples=8, evaluate_at_end=False)
    assert np.isfinite(result.history[-1]["train_loss"]) and not np.array_equal(net.conv1.weight.asnumpy(), before)


def test_fp16_on_a_users_cell():
    """``precision="fp16"`` on an adopted randomized cell: MindSpore's O2 as for the built networks (its Conv2d and
    Dense cells in float16, rna-core's slots and the logits in float32), close to float32 on the same draw."""
    import numpy as np

    from rna_core.backend import Speed
    from rna_core.classifier import adopt
    from rna_core.mindspore import randomize

    be = get_backend("mindspore", mode="pynative")
    full = adopt(randomize(MsResNet18(), "bn+in", seed=0), 10, 3, backend=be)
    half = adopt(randomize(MsResNet18(), "bn+in", seed=0), 10, 3, backend=be)
    be.set_state(half.model, be.get_state(full.model))
    be.prepare(half.model, Speed("fp16"))
    x = np.random.default_rng(1).random((4, 3, 12, 12), dtype=np.float32)
    draw, outs = full.controller.draw(), []
    for clf in (full, half):
        clf.model.set_train(False)
        with clf.controller.fixed(draw):
            outs.append(clf.logits(x))
    assert outs[1].dtype == np.float32 and half.model.module.conv1.weight.dtype == ms.float32
    assert 0 < np.abs(outs[1] - outs[0]).max() < 0.02 * np.abs(outs[0]).max()  # computed in half, close
    with pytest.raises(ValueError, match="randomize the cell first"):
        adopt(Linear(), 10, 1, backend=be).model.synchronize_batch_norm(2)


class Broken(nn.Cell):
    """A cell whose output is wrong in the way ``kind`` says."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.flat, self.kind = nn.Flatten(), kind
        self.head = nn.Dense(28 * 28, 7 if kind == "classes" else 10)

    def construct(self, x):
        z = self.head(self.flat(x))
        if self.kind == "nan":
            return z * float("nan")
        if self.kind == "tuple":
            return z, z
        return z


@pytest.mark.parametrize("mode", ["graph", "pynative"])
@pytest.mark.parametrize("kind, error, message", [
    ("nan", ValueError, "NaN or infinite logits for 8 of 8 images"),
    ("classes", ValueError, r"shape \(8, 7\) for 8 images; expected logits of shape \(8, 10\)"),
    ("tuple", TypeError, "must return one logits tensor, it returned a tuple"),
])
def test_a_broken_cell_is_refused_on_its_first_batch(mode, kind, error, message):
    with pytest.raises(error, match=message):
        rna_core.evaluate(Broken(kind), load_bundled("test").subset(16), [pgd(2)],
                          backend=get_backend("mindspore", mode=mode), progress=False)


@pytest.mark.parametrize("mode", ["graph", "pynative"])
def test_mindspore_tensors_in_give_the_data_sets_numbers_and_tensors_out(mode):
    import numpy as np

    be = get_backend("mindspore", mode=mode)
    data = load_bundled("test").subset(16)
    x, y = ms.Tensor(data.x.astype(np.float32) / 255), ms.Tensor(data.y)
    ms.set_seed(0)
    cell = Linear()
    want = rna_core.evaluate(cell, data, ["pgd:2"], backend=be, progress=False)
    got = rna_core.evaluate(cell, (x, y), ["pgd:2"], backend=be, progress=False)
    assert {k: got[k] for k in ("clean", "PGD-2/white-box")} == {k: want[k] for k in ("clean", "PGD-2/white-box")}
    adv = rna_core.attack(cell, x, y, "pgd", steps=2, backend=be)
    assert isinstance(adv, ms.Tensor) and adv.shape == x.shape
    assert rna_core.score_examples(cell, adv, y, backend=be).expected == want["PGD-2/white-box"]
