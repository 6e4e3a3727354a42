"""Backend selection: RNA_TEST_BACKENDS=torch,mindspore (default: every installed framework).

Test folders of unselected backends are not collected, so their frameworks are never imported. The contract
suite (tests/contract) takes a ``backend`` fixture parametrized over the selected backends: torch, and
MindSpore in GRAPH_MODE and PyNative."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

KNOWN = ("torch", "mindspore")
CONTRACT_BACKENDS = {"torch": ("torch", {}), "mindspore-graph": ("mindspore", {"mode": "graph"}),
                     "mindspore-pynative": ("mindspore", {"mode": "pynative"})}


def selected_backends() -> set[str]:
    env = os.environ.get("RNA_TEST_BACKENDS")
    if env is None:
        return {b for b in KNOWN if importlib.util.find_spec(b) is not None}
    return {b.strip() for b in env.split(",") if b.strip() in KNOWN}


collect_ignore_glob = [f"{b}/*" for b in KNOWN if b not in selected_backends()]
if {"torch", "mindspore"} - selected_backends():
    collect_ignore_glob.append("parity/*")
if not selected_backends():
    collect_ignore_glob.append("contract/*")


README = Path(__file__).resolve().parents[1] / "README.md"
# the README's training snippets shrunk to seconds (recipe keys every recipe takes from the environment)
README_SHRINK = "epochs=1 train_samples=256 eval_samples=32 arch=small_cnn width=4 batch_size=64"


@pytest.fixture
def run_readme(tmp_path, monkeypatch):
    """``run_readme(framework)``: run the README's Python code blocks for ``framework`` (those naming mindspore, or
    the others), the ``index``-th, in a fresh directory, training shrunk by ``RNA_SET``; returns its code."""

    def run(framework: str, index: int) -> str:
        blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
        code = [b for b in blocks if ("mindspore" in b) == (framework == "mindspore")][index]
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("RNA_SET", README_SHRINK)
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
        return code

    return run


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        ids = [k for k, (framework, _) in CONTRACT_BACKENDS.items() if framework in selected_backends()]
        metafunc.parametrize("backend", ids, indirect=True, scope="module")


def _reseed_framework(backend, seed: int) -> None:
    if backend.name == "torch":
        import torch

        torch.manual_seed(seed)
    else:
        import mindspore

        mindspore.set_seed(seed)


@pytest.fixture
def reseed():
    """``reseed(backend, seed)``: seed the backend's framework's own global RNG (the core never draws from it)."""
    return _reseed_framework


@pytest.fixture(scope="module")
def backend(request):
    from rna_core.registry import get_backend

    framework, options = CONTRACT_BACKENDS[request.param]
    return get_backend(framework, **options)
