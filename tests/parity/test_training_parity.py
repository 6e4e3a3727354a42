"""Whole training runs agree: 20 black-box adversarial training steps (PGD-1 on one path, the update on a fresh
one) train the same model on torch and on MindSpore (both modes): weights, momentum buffers and running statistics,
unselected candidates included (tests/contract/test_algorithms.py checks that those stay untouched)."""

import pytest

from rna_core.apps.parity import compare_training
from rna_core.registry import get_backend


@pytest.mark.parametrize("mode", ["pynative", "graph"])
@pytest.mark.parametrize("norms", ["bn+in", "bgn@1-4+gn@1-4"])
def test_twenty_steps_with_fresh_paths_train_the_same_model(norms, mode):
    diffs = compare_training("torch", get_backend("mindspore", mode=mode), norms, "blackbox", steps=20, width=4,
                             batch=8)
    print(f"\n{norms:15s} {mode:8s} " + "  ".join(f"{k}={v:.1e}" for k, v in diffs.items()))
    assert max(diffs.values()) < 1e-4, diffs
