"""Recipe keys precision / channels_last / compile on torch: the same numbers as the plain eager float32 model
(to rounding), layouts kept, a bounded number of compiled graphs for any number of paths, fp16 attack gradients
that do not vanish. The compiler here is ``aot_eager`` (dynamo + AOT autograd without code generation: the
graphs and guards of inductor, no C++ compiler needed on CI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch._dynamo.utils as dynamo_utils

from rna_core import pgd
from rna_core.attacks import attack
from rna_core.backend import SGDConfig, Speed
from rna_core.backends.torch.layers import BatchGroupNorm, GroupNorm
from rna_core.classifier import build_classifier
from rna_core.losses import CE_MEAN
from rna_core.methods import Step
from rna_core.validation import ConfigError


def _clf(norms: str = "bn+in", seed: int = 0):
    return build_classifier({"name": "resnet18", "num_classes": 10, "in_channels": 3, "width": 4}, norms, True,
                            "torch", np.random.default_rng(seed), 0)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max() / b.detach().abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("layer", [BatchGroupNorm(8, 2), GroupNorm(8, 2), GroupNorm(8, 8), GroupNorm(8, 1)],
                         ids=["bgn2", "gn2", "in", "ln"])
@pytest.mark.parametrize("training", [True, False])
def test_channels_last_norms_keep_the_layout_and_the_numbers(layer, training):
    torch.manual_seed(0)
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
    layer.train(training)
    twin = type(layer)(8, layer.groups)
    twin.load_state_dict(layer.state_dict())
    twin.train(training)
    x = torch.randn(4, 8, 5, 6, requires_grad=True)
    xc = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    y, yc = layer(x), twin(xc)
    assert yc.is_contiguous(memory_format=torch.channels_last) and not yc.is_contiguous()
    assert _rel(yc, y) < 1e-5
    u = torch.randn_like(y)
    g = torch.autograd.grad((y * u).sum(), [x, layer.weight])
    gc = torch.autograd.grad((yc * u).sum(), [xc, twin.weight])
    assert all(_rel(b, a) < 1e-4 for a, b in zip(g, gc, strict=True))
    for k, v in layer.state_dict().items():
        torch.testing.assert_close(twin.state_dict()[k], v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("norms,channels_last", [("bn+in", False), ("bgn@2+gn@2+in+ln", True)])
def test_compiled_model_equals_eager_on_every_path(norms, channels_last):
    """One-hot slots under compilation: logits, parameter gradients (None for the candidates off the path, after
    ``drop_unselected_grads``) and running statistics of the path's candidates equal the eager model's."""
    eager, compiled = _clf(norms), _clf(norms)
    compiled.model.prepare("fp32", channels_last, True, compiler="aot_eager")
    x = torch.rand(6, 3, 12, 12)
    for _ in range(3):
        draw = eager.controller.draw()
        for m in (eager.model, compiled.model):
            m.train()
            m.zero_grad(set_to_none=True)
        out_e, out_c = eager.model(x, draw), compiled.model(x, draw)
        assert _rel(out_c, out_e) < 1e-5
        out_e.square().sum().backward()
        out_c.square().sum().backward()
        compiled.model.drop_unselected_grads()
        for (name, p), q in zip(eager.model.named_parameters(), compiled.model.parameters(), strict=True):
            assert (p.grad is None) == (q.grad is None), name
            if p.grad is not None:
                assert _rel(q.grad, p.grad) < 1e-4, name
        se, sc = eager.model.state_dict(), compiled.model.state_dict()
        for k in se:
            torch.testing.assert_close(sc[k], se[k], rtol=1e-5, atol=1e-6)


def test_compiled_run_of_many_paths_compiles_a_bounded_number_of_graphs():
    """100 training steps on fresh paths, black-box PGD attacks on held paths and evaluation forwards: the
    compiler's own counter of unique graphs stays at a handful (train step, attack, eval), however many paths."""
    clf = _clf("bn+in")
    be = clf.backend
    be.prepare(clf.model, Speed("fp32", False, False))
    clf.model.prepare("fp32", False, True, compiler="aot_eager")
    opt = be.make_optimizer(clf.model, SGDConfig(0.01))
    rng = np.random.default_rng(0)
    x, y = torch.rand(8, 3, 8, 8), torch.randint(0, 10, (8,))
    dynamo_utils.counters.clear()
    paths = set()
    with clf.controller.observe(lambda d: paths.add(tuple(d.path))):
        for step in range(100):
            clf.model.set_train(True)
            if step % 25 == 0:
                with clf.controller.frozen():
                    attack(be, clf.model, x, y, pgd(2, 8 / 255, 2 / 255), rng)
            Step(clf, opt, None, None, 0.01).descend(CE_MEAN, x, y)
        clf.model.set_train(False)
        for _ in range(5):
            clf.logits(x)
    assert len(paths) > 90
    graphs = dynamo_utils.counters["stats"]["unique_graphs"]
    assert 1 <= graphs <= 4, dict(dynamo_utils.counters["stats"])


def test_train_step_leaves_its_metrics_on_the_device():
    clf = _clf("bn")
    be = clf.backend
    opt = be.make_optimizer(clf.model, SGDConfig(0.01))
    res = Step(clf, opt, None, None, 0.01).descend(CE_MEAN, torch.rand(4, 3, 8, 8), torch.randint(0, 10, (4,)))
    assert isinstance(res.loss, torch.Tensor) and isinstance(res.correct, torch.Tensor)
    assert np.isfinite(float(res.loss)) and 0 <= int(res.correct) <= 4


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_forward_and_attack_gradient(precision):
    """Logits come back float32 and close to the float32 model's; the attack's input gradient is float32 and
    points the same way (fp16 scales the loss, so a batch-mean gradient does not flush to zero)."""
    full, half = _clf("bn"), _clf("bn")
    half.backend.prepare(half.model, Speed(precision, False, False))
    for m in (full.model, half.model):
        m.eval()
    x, y = torch.rand(16, 3, 12, 12), torch.randint(0, 10, (16,))
    with torch.no_grad():
        z_full, z_half = full.model(x), half.model(x)
    assert z_half.dtype == torch.float32 and _rel(z_half, z_full) < 0.05
    g_full = full.input_gradient(full.backend.ops.tensor(x.numpy()), y)
    g_half = half.input_gradient(half.backend.ops.tensor(x.numpy()), y)
    assert g_half.dtype == np.float32 and np.count_nonzero(g_half) > 0.9 * g_half.size
    assert np.mean(np.sign(g_half) == np.sign(g_full)) > 0.8


def test_prepare_checks_its_arguments():
    clf = _clf("bn")
    with pytest.raises(ValueError, match="precision must be one of"):
        clf.model.prepare("fp8")
    from rna_core.recipes import get_recipe

    with pytest.raises(ConfigError, match="precision"):
        get_recipe("quick", precision="half")
    with pytest.raises(ConfigError, match="runs fp32 and uncompiled"):
        get_recipe("quick-apart", precision="bf16")


def _native_bf16() -> bool:
    from rna_core.backends.torch.backend import native_bf16

    return native_bf16()


@pytest.mark.slow
@pytest.mark.skipif(not _native_bf16(), reason="this CPU emulates bf16 (no avx512_bf16 / amx_bf16): the quick recipe "
                    "in bf16 would take ~15 minutes instead of ~1.5 (rna-core warns about it when chosen)")
def test_quick_recipe_in_bf16_reaches_the_fp32_accuracy(tmp_path):
    """Accuracy is not traded for speed: the quick recipe (black-box RNA training, 4 epochs) with bf16 autocast
    reaches the clean test accuracy of the float32 run of the same seed within 1.5 points (500 test images,
    expected accuracy over fresh paths)."""
    import rna_core

    acc = {}
    for precision in ("fp32", "bf16"):
        result = rna_core.train("quick", backend="torch", out_dir=tmp_path / precision, progress=False,
                                precision=precision, eval_attack=None, eval_answers=4)
        acc[precision] = result.final["clean"]
    assert acc["fp32"] > 0.5, acc
    assert abs(acc["bf16"] - acc["fp32"]) <= 0.015, acc


def test_bf16_on_a_cpu_without_native_bf16_is_warned_about(monkeypatch):
    import warnings

    from rna_core.backends.torch import backend as tb

    clf = build_classifier({"name": "small_cnn", "num_classes": 10, "in_channels": 1, "width": 4}, "bn", True, "torch",
                           np.random.default_rng(0))
    monkeypatch.setattr(tb, "cpu_flags", lambda: {"avx2", "fma"})
    with pytest.warns(RuntimeWarning, match="without native bf16"):
        clf.backend.prepare(clf.model, Speed("bf16"))
    monkeypatch.setattr(tb, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.backend.prepare(clf.model, Speed("bf16"))


@pytest.mark.parametrize("cin", [2, 4, 7, 16])
def test_a_strided_pointwise_convolution_of_channels_last_is_right(cin):
    """torch 2.13's CPU kernel gets the weight gradient of a strided 1 x 1 convolution of a channels_last input
    with 2-7 input channels wrong on AVX2 machines; the built shortcut convolution computes it on the subsampled
    input instead: the gradients of the contiguous convolution."""
    from rna_core.backends.torch.layers import StridedPointwise

    torch.manual_seed(0)
    conv = StridedPointwise(cin, 8, 1, 2, 0, bias=False)
    x = torch.randn(6, cin, 12, 12)
    xc = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    y, yc = torch.nn.functional.conv2d(x, conv.weight, None, 2), conv(xc)
    u = torch.randn_like(y)
    g = torch.autograd.grad((y * u).sum(), [conv.weight])[0]
    gc, gx = torch.autograd.grad((yc * u).sum(), [conv.weight, xc])
    assert _rel(yc, y) < 1e-6 and _rel(gc, g) < 1e-5
    assert float(gx[:, :, 1::2].abs().max()) == 0.0 and float(gx[:, :, ::2, ::2].abs().min()) > 0
