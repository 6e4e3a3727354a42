"""torch vs MindSpore (PyNative and GRAPH_MODE) on the same weights, input, path and random start."""

import pytest

from rna_core.apps.parity import QUANTITIES, compare
from rna_core.registry import get_backend

NORMS = ["bn", "bgn:2", "in", "gn:2", "ln", "bn+in"]
TOL = {"pgd": 1e-2, "fgsm": 1e-2, "mifgsm": 1e-2}  # fraction of pixels at rounding-level gradient ties


@pytest.mark.parametrize("mode", ["pynative", "graph"])
@pytest.mark.parametrize("norms", NORMS)
def test_backends_agree(norms, mode):
    diffs = compare("torch", get_backend("mindspore", mode=mode), norms)
    assert set(diffs) == set(QUANTITIES)
    print(f"\n{norms:16s} {mode:8s} " + "  ".join(f"{k}={v:.1e}" for k, v in diffs.items()))
    bad = {k: v for k, v in diffs.items() if not v < TOL.get(k, 1e-4)}
    assert not bad, f"largest relative differences above tolerance: {bad}"


@pytest.mark.parametrize("mode", ["pynative", "graph"])
@pytest.mark.parametrize("position, variant", [(0, "in"), (0, "out"), (0, "both"), (0, "filter"), (2, "in")])
def test_random_weight_layers_agree(position, variant, mode):
    """CTRW random weights with one fixed noise draw: the same numbers on both backends, mu and sigma included."""
    diffs = compare("torch", get_backend("mindspore", mode=mode), "bn", "small_cnn", 8, size=16,
                    ctrw={"position": position, "variant": variant})
    print(f"\nctrw {position}/{variant:6s} {mode:8s} " + "  ".join(f"{k}={v:.1e}" for k, v in diffs.items()))
    bad = {k: v for k, v in diffs.items() if not v < TOL.get(k, 1e-4)}
    assert not bad, f"largest relative differences above tolerance: {bad}"
