"""The README's MindSpore snippet runs as written (GRAPH_MODE on the CPU), its training shrunk to seconds by
``RNA_SET``."""

from __future__ import annotations


def test_the_readme_mindspore_snippet_runs(run_readme, capsys):
    assert "get_backend(\"mindspore\"" in run_readme("mindspore", 0)
    assert 0 <= float(capsys.readouterr().out.split()[-1]) <= 1
