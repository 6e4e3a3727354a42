"""A user's own nn.Module: ``rna_core.torch.randomize`` equals the built-in RNA ResNet-18 on the same weights and
path, draws a fresh path inside every forward, works with torchattacks, state_dict / safetensors and DDP; and
``rna_core.evaluate`` / ``rna_core.train`` take any module, randomized or not, with the randomness named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import rna_core
from rna_core import pgd
from rna_core.classifier import build_classifier
from rna_core.data import load_bundled
from rna_core.torch import randomize


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class UserResNet18(nn.Module):
    """A ResNet-18 written the way a user would (CIFAR stem), not with rna-core's graph."""

    def __init__(self, width: int = 4, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages, cin = [], width
        for mult, stride in zip((1, 2, 4, 8), (1, 2, 2, 2), strict=True):
            stages.append(nn.Sequential(Block(cin, width * mult, stride), Block(width * mult, width * mult, 1)))
            cin = width * mult
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(out.mean((2, 3)))


def _pair(seed: int = 0):
    builtin = build_classifier({"name": "resnet18", "num_classes": 10, "in_channels": 3, "width": 4}, "bn+in", True,
                               "torch", np.random.default_rng(seed), seed)
    user = randomize(UserResNet18(), "bn+in", seed=seed)
    theirs, ours = builtin.model.state_dict(), user.state_dict()
    assert [tuple(v.shape) for v in theirs.values()] == [tuple(v.shape) for v in ours.values()]
    user.load_state_dict(dict(zip(ours, theirs.values(), strict=True)))
    return builtin, user


@pytest.mark.parametrize("training", [True, False])
def test_randomized_user_module_equals_the_builtin_model(training):
    builtin, user = _pair()
    builtin.model.train(training)
    user.train(training)
    x = torch.rand(6, 3, 16, 16)
    for _ in range(3):
        draw = builtin.controller.draw()
        xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        za = builtin.model(xa, draw)
        with user.rna_controller.fixed(draw):
            zb = user(xb)
        torch.testing.assert_close(zb, za, rtol=1e-6, atol=1e-6)
        ga = torch.autograd.grad(F.cross_entropy(za, torch.arange(6)), xa)[0]
        gb = torch.autograd.grad(F.cross_entropy(zb, torch.arange(6)), xb)[0]
        torch.testing.assert_close(gb, ga, rtol=1e-5, atol=1e-7)


def test_bn_candidate_keeps_the_replaced_layers_weights_and_statistics():
    model = UserResNet18()
    with torch.no_grad():
        model.bn1.weight.uniform_(0.5, 1.5)
        model.bn1.running_mean.normal_()
    weight, mean = model.bn1.weight.clone(), model.bn1.running_mean.clone()
    randomize(model, "bn+in")
    assert torch.equal(model.bn1.bn.weight, weight) and torch.equal(model.bn1.bn.running_mean, mean)
    assert model.rna.space.num_layers == 20 and model.rna.space.size == 2**20
    plain = UserResNet18()
    plain.bn1.running_mean.copy_(mean)
    randomize(plain, "bn/na+in")  # a BN candidate without affine keeps the statistics
    assert torch.equal(plain.bn1.bn_na.running_mean, mean) and plain.rna.bn_layout.size > 0
    with pytest.raises(ValueError, match="randomized already"):
        randomize(model)
    with pytest.raises(ValueError, match="no BatchNorm2d"):
        randomize(nn.Sequential(nn.Conv2d(3, 4, 3)))


def test_a_refused_randomize_leaves_the_module_unchanged():
    """Every check runs before the module is touched: after a refusal the module has its layers, weights and no
    attribute of rna-core's, and a corrected call works."""
    module = UserResNet18()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    kinds = [type(m) for m in module.modules()]
    with pytest.raises(ValueError, match="no submodule of that name"):
        randomize(module, "bn+in", random_weight="nope")
    with pytest.raises(ValueError, match="gn"):
        randomize(module, "bn+gn:3")
    assert [type(m) for m in module.modules()] == kinds and not hasattr(module, "rna")
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    assert randomize(module, "bn+in").rna.space.num_layers == 20


def test_every_forward_draws_a_fresh_path_and_torchattacks_runs():
    import torchattacks

    model = randomize(UserResNet18(), "bn+in", seed=3).eval()
    x, y = torch.rand(8, 3, 16, 16), torch.randint(0, 10, (8,))
    paths = []
    with model.rna_controller.observe(lambda d: paths.append(tuple(d.path))):
        with torch.no_grad():
            a, b = model(x), model(x)
    assert len(set(paths)) == 2 and not torch.equal(a, b)
    adv = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=2)(x, y)
    assert adv.shape == x.shape and 0 < (adv - x).abs().max() <= 8 / 255 + 1e-6


def test_state_dict_round_trips_through_safetensors(tmp_path):
    from safetensors.torch import load_file, save_file

    model = randomize(UserResNet18(), "bn+in", seed=1).eval()
    save_file(model.state_dict(), tmp_path / "user.safetensors")
    again = randomize(UserResNet18(), "bn+in", seed=2).eval()
    again.load_state_dict(load_file(tmp_path / "user.safetensors"))
    x = torch.rand(4, 3, 16, 16)
    draw = model.rna_controller.draw()
    with torch.no_grad(), model.rna_controller.fixed(draw), again.rna_controller.fixed(draw):
        torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)


def test_ddp_wraps_a_randomized_module(tmp_path):
    """Two gloo processes (torchrun) with the same seed draw the same paths, so DDP's averaged gradients keep the
    replicas' parameters identical after every step (running statistics are rank 0's from each forward on, DDP's
    broadcast_buffers)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    worker = Path(__file__).parents[1] / "workers" / "ddp_user_model.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(worker), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


class DropoutAtInference(nn.Module):
    """Someone else's randomized defense: dropout that stays on in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(F.dropout(self.body(x), 0.3, training=True))


def test_evaluate_any_module_names_its_randomness():
    data = load_bundled("test").subset(32)
    torch.manual_seed(0)
    own = rna_core.evaluate(DropoutAtInference(), data, [pgd(3)], "both", eot=2, answers=3, progress=False)
    assert own["randomness"] == "own" and own["protocol"] == "eot"
    assert f"{pgd(3).label}/eot" in own
    assert set(own["protocols_skipped"]) == {"paper", "transfer", "oracle"}
    assert not any(k.endswith("/paper") for k in own)
    plain = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    det = rna_core.evaluate(plain, data, [pgd(3)], progress=False)
    assert det["randomness"] == "none" and det["protocol"] == "white-box" and "white-box" in det["note"]
    user = randomize(UserResNet18(in_channels=1), "bn+in", seed=0)
    ours = rna_core.evaluate(user, data, [pgd(3)], "both", eot=2, answers=3, progress=False)
    assert ours["randomness"] == "rna-core" and any(k.endswith("/paper") for k in ours)


def test_train_takes_a_users_randomized_module(tmp_path):
    user = randomize(UserResNet18(in_channels=1), "bn+in", seed=0)
    before = {k: v.clone() for k, v in user.state_dict().items()}
    result = rna_core.train("quick", model=user, out_dir=tmp_path, progress=False, epochs=1, train_samples=256,
                            eval_samples=64, eval_attack=None, eval_answers=2)
    assert result.history[0]["train_loss"] > 0 and 0 <= result.final["clean"] <= 1
    changed = [k for k in before if not torch.equal(before[k], user.state_dict()[k])]
    assert any(".bn." in k for k in changed) and any(".in." in k for k in changed)


def test_apart_step_on_a_users_bn_model_equals_the_builtin_one():
    """APART (and APART-SAM) on a hand-written BN ResNet-18 made perturbable by ``randomize(m, "bn")``: the same
    two-pass update as on the built-in graph with the same weights, batch and random numbers."""
    from rna_core.backend import SGDConfig
    from rna_core.classifier import adopt
    from rna_core.methods import take_step
    from rna_core.recipes import get_recipe

    builtin = build_classifier({"name": "resnet18", "num_classes": 10, "in_channels": 3, "width": 4}, "bn", True,
                               "torch", np.random.default_rng(0), 0)
    user = randomize(UserResNet18(), "bn")
    ours = user.state_dict()
    user.load_state_dict(dict(zip(ours, builtin.model.state_dict().values(), strict=True)))
    mine = adopt(user, 10, 3, backend="torch")
    assert mine.bn_layout.size == builtin.bn_layout.size and not mine.controller.is_random
    recipe = get_recipe("quick-apart", batch_size=16, apart_groups=4)
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 3, 16, 16), dtype=np.float32), rng.integers(0, 10, 16)
    for sam in (False, True):
        for clf in (builtin, mine):
            opt = clf.backend.make_optimizer(clf.model, SGDConfig(0.1))
            res = take_step(clf, opt, "apart-sam" if sam else "apart", x, y, recipe, np.random.default_rng(1), 0.1)
            assert np.isfinite(float(res.loss))
        for a, b in zip(builtin.model.state_dict().values(), user.state_dict().values(), strict=True):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_ctrw_random_weight_on_a_users_module(tmp_path):
    """CTRW's random weight at the input (position 0) or before the head of a user's module: fresh noise in every
    forward, bounds scaled to its size, and ``method="ctrw"`` keeps sum(sigma) inside them while training."""
    head = randomize(UserResNet18(in_channels=1), norms=None, random_weight="fc", seed=0).eval()
    assert tuple(head.rna_random_weight.sigma.shape) == (32,) and head.rna_controller.noise_size == 32
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert not torch.equal(head(x), head(x))
    model = randomize(UserResNet18(in_channels=1), "bn+in", random_weight="input", input_shape=(1, 28, 28))
    lo, hi = model.rna.sigma_bounds
    assert (lo, hi) == pytest.approx((1000 * 784 / 3072, 2400 * 784 / 3072))
    rna_core.train("quick-ctrw", model=model, out_dir=tmp_path, progress=False, epochs=1, train_samples=256,
                   eval_samples=64, eval_attack=None, eval_answers=2, sigma_lower=lo, sigma_upper=hi)
    total = float(model.rna_random_weight.sigma.detach().sum())
    assert lo - 1e-3 <= total <= hi + 1e-3
    first = randomize(UserResNet18(in_channels=1), "bn+in", random_weight="conv1", input_shape=(1, 28, 28))
    first.load_state_dict(model.state_dict())
    model.rna_controller.rng, first.rna_controller.rng = np.random.default_rng(3), np.random.default_rng(3)
    with torch.no_grad():  # the first convolution's input is the image: the same weight as at "input"
        torch.testing.assert_close(first.eval()(x), model.eval()(x))
    with pytest.raises(ValueError, match="input_shape"):
        randomize(UserResNet18(), random_weight="input")
    with pytest.raises(ValueError, match="input_shape"):
        randomize(UserResNet18(), random_weight="conv1")
    with pytest.raises(ValueError, match=r"gets inputs of shape \(1, 28, 28\)"):
        randomize(UserResNet18(in_channels=1), random_weight="conv1", input_shape=(1, 32, 32))(x)
    with pytest.raises(ValueError, match="must be a linear"):
        randomize(UserResNet18(), norms=None, random_weight="bn1")


def test_torchvision_model_randomized_and_trained(tmp_path):
    """The README's torchvision snippet, small, where torchvision imports (not a dependency: its PyPI wheel is a
    CUDA build that fails to import on the CPU torch of CI, where this test is skipped with the reason)."""
    try:
        import torchvision
    except Exception as err:  # not installed, or installed for another torch build (RuntimeError at import)
        pytest.skip(f"torchvision does not import here: {type(err).__name__}: {err}")
    from rna_core.backends.torch.network import Normalize

    net = torchvision.models.resnet18(num_classes=10)
    net.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)  # the bundled images have one channel
    model = randomize(nn.Sequential(Normalize((0.286,), (0.353,)), net), "bn+in", seed=0)
    assert model.rna.space.num_layers == 20 and "1.layer1.0.bn1.in.weight" in model.state_dict()
    result = rna_core.train("quick", model=model, out_dir=tmp_path, progress=False, epochs=1, train_samples=32,
                            batch_size=16, train_attack=pgd(1), eval_samples=16, eval_attack=pgd(1), eval_answers=2,
                            eval_eot=1)
    assert result.final["randomness"] == "rna-core" and 0 <= result.final["clean"] <= 1
