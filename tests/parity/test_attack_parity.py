"""Every attack on torch and MindSpore: the losses behind them agree to float32 tolerance in both MindSpore modes,
and whole attacks agree on robust accuracy and perturbation size (GRAPH_MODE, one fixed path, same random numbers)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mindspore import Tensor

from rna_core.backends.mindspore.backend import _Oracle
from rna_core.backends.torch import attacks as torch_attacks
from rna_core.parity import ATTACKS, _pair, compare_attacks
from rna_core.registry import get_backend

LOSSES = ["ce", "dlr", "dlr-t", "cw:0.0", "cw:0.5", "logits"]


def _torch_loss(name: str, logits, y, w):
    if name == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    if name == "dlr":
        return torch_attacks.dlr(logits, y)
    if name == "dlr-t":
        return torch_attacks.dlr_targeted(logits, y, w)
    if name == "logits":
        return (logits * w).sum(1)
    return w * torch_attacks._cw_margin(logits, y, float(name[3:]))


@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_attack_losses_and_gradients_agree(mode):
    ca, cb = _pair("torch", get_backend("mindspore", mode=mode), "bn+in", "small_cnn", 8, 0)
    rng = np.random.default_rng(0)
    x = rng.random((6, 3, 16, 16), dtype=np.float32)
    y = rng.integers(0, 10, 6)
    target = (y + rng.integers(1, 10, 6)) % 10
    weights = {"ce": y, "dlr": y, "dlr-t": target, "logits": rng.standard_normal((6, 10)).astype(np.float32)}
    oracle = _Oracle(cb.backend, cb.model)
    with ca.controller.fixed(ca.controller.draw()) as path, cb.controller.fixed(path):
        for c in (ca, cb):
            c.backend.set_training(c.model, False)
        for name in LOSSES:
            w = weights.get(name, rng.uniform(0.5, 2, 6).astype(np.float32))
            xt = torch.tensor(x, requires_grad=True)
            per_t = _torch_loss(name, ca.model(xt), torch.tensor(y), torch.tensor(w))
            (grad_t,) = torch.autograd.grad(per_t.sum(), xt)
            wm = Tensor(w.astype(np.int32)) if w.dtype.kind == "i" else Tensor(w)
            per_m, _, grad_m = oracle.grad(name, Tensor(x), Tensor(y.astype(np.int32)), wm, oracle.path())
            for what, a, b in (("loss", per_t.detach().numpy(), per_m.asnumpy()),
                               ("gradient", grad_t.numpy(), grad_m.asnumpy())):
                rel = np.abs(a - b).max() / np.abs(a).max()
                assert rel < 1e-4, f"{name} {what}: relative difference {rel:.1e}"


def test_attacks_agree_graph_mode():
    diffs = compare_attacks("torch", get_backend("mindspore", mode="graph"), batch=16)
    assert set(diffs) == {s.label for s in ATTACKS}
    for label, d in diffs.items():
        print(f"\n{label:10s} " + "  ".join(f"{k}={v:.1e}" for k, v in d.items()), end="")
    bad = {k: d for k, d in diffs.items() if d["accuracy"] > 1 / 16 or d["l2"] > 1e-2}
    assert not bad, f"attacks disagree beyond one example / 1 % of the perturbation: {bad}"
    assert diffs["Square"]["pixels"] == 0, "Square uses no gradient: its queries must agree exactly"
    assert diffs["DeepFool"]["pixels"] < 1e-3
