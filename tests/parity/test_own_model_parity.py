"""The two randomized user models agree: the hand-written ResNet-18 of the torch tests (an nn.Module) and of the
MindSpore tests (an nn.Cell), each randomized by its framework's ``randomize`` (RNA slots and CTRW's random weight
before the first convolution), on the same weights, input and draw (path and noise) give the same logits (eval and
train mode) and input gradients, in both MindSpore modes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from rna_core.classifier import adopt
from rna_core.mindspore import randomize as ms_randomize
from rna_core.registry import get_backend
from rna_core.torch import randomize as torch_randomize

TESTS = Path(__file__).resolve().parents[1]


def _load(relative: str):
    name = "own_model_" + relative.replace("/", "_")[:-3]
    if name not in sys.modules:  # MindSpore's graph parser looks a cell's module up by name
        spec = importlib.util.spec_from_file_location(name, TESTS / relative)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


@pytest.mark.parametrize("mode", ["graph", "pynative"])
@pytest.mark.parametrize("training", [False, True])
def test_randomized_user_models_agree(mode, training):
    weight = {"random_weight": "conv1", "input_shape": (3, 16, 16)}  # CTRW's random weight on the image
    user_torch = torch_randomize(_load("torch/test_own_model.py").UserResNet18(), "bn+in", seed=0, **weight)
    cell = ms_randomize(_load("mindspore/test_own_model.py").MsResNet18(), "bn+in", seed=0, graph_mode=mode == "graph",
                        **weight)
    tb, mb = get_backend("torch", device="cpu"), get_backend("mindspore", mode=mode)
    a, b = adopt(user_torch, 10, 3, backend=tb), adopt(cell, 10, 3, backend=mb)
    ta, sb = tb.get_state(a.model), mb.get_state(b.model)
    assert [v.shape for v in ta.values()] == [v.shape for v in sb.values()]
    mb.set_state(b.model, dict(zip(sb, ta.values(), strict=True)))
    a.model.set_train(training)
    b.model.set_train(training)
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 3, 16, 16), dtype=np.float32), rng.integers(0, 10, 4)
    for _ in range(2):
        draw = a.controller.draw()
        with a.controller.fixed(draw), b.controller.fixed(draw):
            za, zb = a.logits(x), b.logits(x)
            ga, gb = a.input_gradient(x, y), b.input_gradient(x, y)
        np.testing.assert_allclose(zb, za, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(gb, ga, rtol=1e-3, atol=1e-4 * np.abs(ga).max())
