"""CUDA checks of the speed options (skipped without a GPU; run them on one with
``pytest tests/torch/test_cuda.py``): inductor-compiled one-hot slots equal eager on the same path, a run of
fresh paths compiles a bounded number of graphs, channels_last layouts survive the whole network, bf16
training steps stay finite and close to float32, and the training step never waits for the host."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rna_core import pgd
from rna_core.attacks import attack
from rna_core.backend import SGDConfig, Speed
from rna_core.classifier import build_classifier
from rna_core.losses import CE_MEAN
from rna_core.methods import Step

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _clf(norms: str, width: int = 16):
    clf = build_classifier({"name": "resnet18", "num_classes": 10, "in_channels": 3, "width": width}, norms, True,
                           "torch", np.random.default_rng(0), 0)
    assert clf.backend.device.type == "cuda"
    return clf


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max() / b.detach().abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("norms", ["bn+in", "bgn@2+gn@2+in+ln"])
def test_inductor_compiled_equals_eager(norms):
    eager, fast = _clf(norms), _clf(norms)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    fast.backend.prepare(fast.model, Speed("fp32", True, True))
    x = torch.rand(32, 3, 32, 32, device="cuda")
    for m in (eager.model, fast.model):
        m.train()
    for _ in range(3):
        draw = eager.controller.draw()
        xe, xc = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        out_e, out_c = eager.model(xe, draw), fast.model(xc, draw)
        assert _rel(out_c, out_e) < 1e-3, f"logits differ by {_rel(out_c, out_e):.3g} (relative)"
        ge = torch.autograd.grad(out_e.square().sum(), xe)[0]
        gc = torch.autograd.grad(out_c.square().sum(), xc)[0]
        assert _rel(gc, ge) < 1e-2, f"input gradients differ by {_rel(gc, ge):.3g} (relative)"


def test_compiled_training_graphs_are_bounded_and_the_step_does_not_sync():
    import torch._dynamo.utils as dynamo_utils

    clf = _clf("bn+in")
    be = clf.backend
    be.prepare(clf.model, Speed("bf16", True, True))
    opt = be.make_optimizer(clf.model, SGDConfig(0.05))
    rng = np.random.default_rng(0)
    x = be.ops.tensor(rng.random((64, 3, 32, 32), dtype=np.float32))
    y = be.ops.tensor(rng.integers(0, 10, 64))
    dynamo_utils.counters.clear()
    first = None
    for step in range(60):
        clf.model.set_train(True)
        with clf.controller.frozen():
            adv = attack(be, clf.model, x, y, pgd(3, 8 / 255, 2 / 255), rng)
        if step == 5:  # compiled; from here on nothing may read the device inside a step
            torch.cuda.set_sync_debug_mode("error")
        res = Step(clf, opt, None, None, 0.05).descend(CE_MEAN, adv, y)
        first = first if first is not None else float(res.loss)
    torch.cuda.set_sync_debug_mode("default")
    assert dynamo_utils.counters["stats"]["unique_graphs"] <= 4
    assert np.isfinite(float(res.loss)) and float(res.loss) < first + 1.0


def test_channels_last_survives_every_layer():
    clf = _clf("bn+in+gn@2")
    clf.backend.prepare(clf.model, Speed("bf16", True, False))
    seen = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append(out.is_contiguous(
        memory_format=torch.channels_last))) for m in clf.model.modules() if isinstance(m, torch.nn.Conv2d)]
    clf.model(torch.rand(8, 3, 32, 32, device="cuda"))
    for h in hooks:
        h.remove()
    assert seen and all(seen)


def test_bf16_step_close_to_fp32():
    full, half = _clf("bn"), _clf("bn")
    half.backend.prepare(half.model, Speed("bf16", True, False))
    x, y = torch.rand(64, 3, 32, 32, device="cuda"), torch.randint(0, 10, (64,), device="cuda")
    losses = []
    for clf in (full, half):
        opt = clf.backend.make_optimizer(clf.model, SGDConfig(0.01))
        clf.model.train()
        losses.append(float(Step(clf, opt, None, None, 0.01).descend(CE_MEAN, x, y).loss))
    assert abs(losses[0] - losses[1]) < 0.05 * abs(losses[0])
