"""``rna_core.evaluate`` on a user's own MindSpore cell, in both modes: a deterministic cell is attacked white-box
and told so; a cell with dropout at inference is detected as random and scored with EOT and fresh answers, the
held-draw protocols named as skipped."""

from __future__ import annotations

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
