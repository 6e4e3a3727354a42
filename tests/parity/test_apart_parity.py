"""APART's perturbable BN and the SAM / APART / APART-SAM steps: the same numbers on torch and MindSpore."""

import pytest

from rna_core.apps.parity import APART_QUANTITIES, compare_apart
from rna_core.registry import get_backend


@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_apart_quantities_agree(mode):
    diffs = compare_apart("torch", get_backend("mindspore", mode=mode))
    assert set(diffs) == set(APART_QUANTITIES)
    print(f"\napart {mode:8s} " + "  ".join(f"{k}={v:.1e}" for k, v in diffs.items()))
    bad = {k: v for k, v in diffs.items() if not v < 1e-4}
    assert not bad, f"largest relative differences above tolerance: {bad}"
