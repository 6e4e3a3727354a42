"""A checkpoint written by rna-core 100ff97 (before the Backend of primitives, the sections of a recipe and the core's
losses) loads and evaluates to the numbers 100ff97 gave, on torch and on MindSpore in both modes: clean accuracy and
PGD-3 under the paper and adaptive protocols, R = 3 answers, EOT-2, 48 test images (``expected.json`` was written by
100ff97's ``evaluate_checkpoint`` on this very run directory). The run: small_cnn width 8, BN+IN, 3 epochs of clean
training on 2,048 bundled images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import rna_core
from rna_core import pgd
from rna_core.registry import get_backend

RUN = Path(__file__).resolve().parents[1] / "data" / "run-100ff97"
BACKENDS = {"torch": ("torch", {}), "mindspore-graph": ("mindspore", {"mode": "graph"}),
            "mindspore-pynative": ("mindspore", {"mode": "pynative"})}


@pytest.mark.parametrize("name", list(BACKENDS))
def test_a_100ff97_checkpoint_evaluates_to_its_numbers(name, tmp_path):
    expected = json.loads((RUN / "expected.json").read_text())[name]
    run = tmp_path / "run"
    shutil.copytree(RUN, run)
    framework, options = BACKENDS[name]
    got = rna_core.evaluate_checkpoint(run, get_backend(framework, **options), attacks=[pgd(3)], samples=48, seed=0,
                                       progress=False, eot=2, answers=3)
    print(f"\n{name}: clean {got['clean']:.4f}, PGD-3 paper {got['PGD-3/paper']:.4f}, adaptive "
          f"{got['PGD-3/adaptive']:.4f} (100ff97: {expected['clean']:.4f}, {expected['PGD-3/paper']:.4f}, "
          f"{expected['PGD-3/adaptive']:.4f})")
    assert {k: got[k] for k in expected} == pytest.approx(expected, rel=1e-12, abs=1e-12)
