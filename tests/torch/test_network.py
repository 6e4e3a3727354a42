"""RNA slots, sampling policies and models built by the torch backend."""

import numpy as np
import pytest
import torch

from rna_core.backends.torch.layers import NormSlot
from rna_core.classifier import build_classifier
from rna_core.controller import DrawController
from rna_core.paths import PathSpace


def _clf(norms="bn+in", arch="resnet18", seed=0, **kw):
    arch_d = {"name": arch, "num_classes": 10, "in_channels": kw.pop("in_channels", 3), **kw}
    return build_classifier(arch_d, norms, True, "torch", np.random.default_rng(seed))


@pytest.mark.parametrize("arch, kw", [
    ("resnet18", {"width": 4}), ("preact_resnet18", {"width": 4}), ("wrn40_2", {}), ("resnet50", {"width": 2}),
])
@pytest.mark.parametrize("channels", [1, 3])
def test_models_forward_any_channels(arch, kw, channels):
    clf = _clf("bn+in+gn@2+ln+bgn:2", arch, in_channels=channels, **kw)
    size = 64 if arch == "resnet50" else 16
    out = clf.model(torch.rand(2, channels, size, size))
    assert out.shape == (2, 10)
    out.sum().backward()


def test_wrn34_10_structure():
    space = PathSpace.uniform("bn+in", 30)
    clf = build_classifier({"name": "wrn34_10", "num_classes": 10, "in_channels": 3}, space, True, "torch",
                           np.random.default_rng(0))
    slots = [m for m in clf.model.modules() if isinstance(m, NormSlot)]
    assert len(slots) == 31 and sum(m.slot is None for m in slots) == 1
    assert sum(p.numel() for p in clf.model.parameters()) > 46_000_000


def test_only_selected_candidate_runs():
    clf = _clf(width=4)
    calls = {"bn": 0, "in": 0}
    for m in clf.model.modules():
        if isinstance(m, NormSlot):
            for key in ("bn", "in"):
                getattr(m, key).register_forward_hook(lambda *_, k=key: calls.__setitem__(k, calls[k] + 1))
    path = np.array([0] * 5 + [1] * 15)
    with clf.controller.fixed(path):
        clf.model(torch.rand(2, 3, 8, 8))
    assert calls == {"bn": 5, "in": 15}


def test_policies_change_the_function():
    clf = _clf(width=4)
    clf.model.set_train(False)
    x = torch.rand(4, 3, 8, 8)
    with torch.no_grad():
        with clf.controller.frozen():
            a, b = clf.model(x), clf.model(x)
        c, d = clf.model(x), clf.model(x)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(c, d)


def test_canonical_names_and_state_round_trip():
    clf = _clf(width=4)
    state = clf.backend.get_state(clf.model)
    assert "layer1.0.main.norm1.bn.running_mean" in state and "layer1.0.main.norm1.in.weight" in state
    assert "layer2.0.shortcut.norm.in.bias" in state and not any("num_batches" in k for k in state)
    other = _clf(width=4, seed=1)
    other.backend.set_state(other.model, state)
    x = torch.rand(2, 3, 8, 8)
    other.model.set_train(False)
    clf.model.set_train(False)
    with clf.controller.fixed(np.zeros(20, int)), other.controller.fixed(np.zeros(20, int)):
        torch.testing.assert_close(clf.model(x), other.model(x))
    with pytest.raises(ValueError, match="missing"):
        other.backend.set_state(other.model, {k: v for k, v in state.items() if "fc" not in k})
    bad = dict(state, **{"fc.weight": np.zeros((3, 3), np.float32)})
    with pytest.raises(ValueError, match="shape of fc.weight"):
        other.backend.set_state(other.model, bad)


def test_bn_checkpoint_names_are_a_subset_of_rna_names():
    bn = set(_clf("bn", width=4).backend.get_state(_clf("bn", width=4).model))
    rna = set(_clf("bn+in", width=4).backend.get_state(_clf("bn+in", width=4).model))
    assert bn < rna


def test_input_checks():
    clf = _clf(width=4)
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        clf.predict(np.zeros((2, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="dtype uint8"):
        clf.predict(np.zeros((2, 3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        clf.predict(np.full((2, 3, 8, 8), 2.0, np.float32))
    with pytest.raises(ValueError, match="normalization slots"):
        clf.backend.build_model(clf.graph, DrawController(PathSpace.uniform("bn", 3), np.random.default_rng()), 0)
