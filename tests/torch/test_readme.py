"""The README's PyTorch snippets run as written, their training shrunk to seconds by ``RNA_SET`` (the MindSpore
snippet runs in tests/mindspore/test_readme.py)."""

from __future__ import annotations


def _fractions(text: str) -> list[float]:
    return [float(v) for v in text.replace(",", " ").split() if v.replace(".", "", 1).isdigit()]


def test_the_readme_torch_snippet_runs(run_readme, capsys):
    code = run_readme("torch", 0)
    assert "load_classifier" in code and "rna_core.attack(" in code
    printed = _fractions(capsys.readouterr().out)
    assert len(printed) >= 3 and all(0 <= v <= 1 for v in printed)


def test_the_readme_own_model_snippet_runs(run_readme, capsys):
    code = run_readme("torch", 1)
    assert "randomize(model" in code
    assert 0 <= float(capsys.readouterr().out.split()[-1]) <= 1
