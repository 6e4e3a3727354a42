"""The precision key on MindSpore: fp16 runs the O2 scheme (convolutions and dense layers in float16, norms and
loss in float32, a static loss scale) in both modes; bf16 is refused on CPU with the reason; channels_last and
compile outside GRAPH_MODE are refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from rna_core.backend import SGDConfig, Speed
from rna_core.classifier import build_classifier
from rna_core.losses import CE_MEAN
from rna_core.methods import Step
from rna_core.registry import get_backend
from rna_core.validation import ConfigError


@pytest.mark.parametrize("mode", ["graph", "pynative"])
def test_fp16_forward_step_and_attack_gradient(mode):
    be = get_backend("mindspore", mode=mode)
    arch = {"name": "resnet18", "num_classes": 10, "in_channels": 3, "width": 4}
    full = build_classifier(arch, "bn+in", True, be, np.random.default_rng(0), 0)
    half = build_classifier(arch, "bn+in", True, be, np.random.default_rng(0), 0)
    be.set_state(half.model, be.get_state(full.model))
    be.prepare(half.model, Speed("fp16"))
    rng = np.random.default_rng(1)
    x, y = rng.random((8, 3, 12, 12), dtype=np.float32), rng.integers(0, 10, 8)
    draw = full.controller.draw()
    outs = []
    for clf in (full, half):
        clf.model.set_train(False)
        with clf.controller.fixed(draw):
            outs.append(clf.logits(x))
    assert outs[1].dtype == np.float32
    assert np.abs(outs[1] - outs[0]).max() < 0.02 * np.abs(outs[0]).max()
    with half.controller.fixed(draw):
        g = half.input_gradient(x, y)
    assert g.dtype == np.float32 and np.count_nonzero(g) > 0.9 * g.size
    opt = be.make_optimizer(half.model, SGDConfig(0.05))
    half.model.set_train(True)
    res = Step(half, opt, None, None, 0.05).descend(CE_MEAN, x, y)
    assert np.isfinite(float(res.loss)) and 0 <= float(res.correct) <= 8


def test_unsupported_options_are_named():
    be = get_backend("mindspore", mode="pynative")
    clf = build_classifier({"name": "small_cnn", "num_classes": 10, "in_channels": 1}, "bn", True, be,
                           np.random.default_rng(0), 0)
    with pytest.raises(ConfigError, match="bfloat16"):
        be.prepare(clf.model, Speed("bf16"))
    with pytest.raises(ConfigError, match="NCHW"):
        be.prepare(clf.model, Speed(channels_last=True))
    with pytest.raises(ConfigError, match="GRAPH_MODE"):
        be.prepare(clf.model, Speed(compile=True))
