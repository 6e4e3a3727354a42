"""``rna-core study-methods`` at a tiny size: two methods, one seed, one epoch (CTRW under EOT training keeps its
random weight, so it is scored as a randomized model); every cell cached, a second call
reads the cache (no training, no evaluation) and gives the same table; ``--cached`` tables what is there and lists
the rest; a cell made with other settings is refused."""

from __future__ import annotations

import json

import pytest

from rna_core.apps import methods_study
from rna_core.apps.cli import main

TINY = ["--set", "epochs=1", "--set", "train_samples=128", "--set", "batch_size=32", "--set", "arch=small_cnn",
        "--set", "width=4", "--set", "train_attack.steps=1"]


def test_the_study_runs_small_and_resumes_from_its_cache(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    argv = ["study-methods", "--out", str(tmp_path), "--methods", "bn-madry,ctrw-eot", "--seeds", "0",
            "--samples", "16", "--curve-samples", "8", "--answers", "2", "--quiet", *TINY]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "| bn-madry | white-box | 1 | 2 |" in first and "| ctrw-eot | adaptive | 1 | 9 |" in first
    cells = {p.name: json.loads(p.read_text()) for p in (tmp_path / "cells").iterdir()}
    assert set(cells) == {"bn-madry-s0.json", "ctrw-eot-s0.json"}
    assert [p["eps_255"] for p in cells["ctrw-eot-s0.json"]["curve"]] == list(methods_study.CURVE)
    assert (tmp_path / "eps_curve.png").stat().st_size > 0

    def refuse(*args, **kwargs):
        raise AssertionError("a cached cell was computed again")

    monkeypatch.setattr(methods_study, "train", refuse)
    monkeypatch.setattr(methods_study, "evaluate", refuse)
    assert main(argv) == 0
    assert capsys.readouterr().out.split("{")[0] == first.split("{")[0]
    assert main([*argv[:4], "bn-madry,nope", *argv[5:]]) == 2
    assert main([*argv[:6], "0,1", *argv[7:], "--cached"]) == 0
    partial = capsys.readouterr().out
    assert "Not yet run (--cached): bn-madry seed 1, ctrw-eot seed 1." in partial
    assert "| bn-madry | white-box | 1 | 2 |" in partial
    assert main([*argv[:8], "17", *argv[9:]]) == 2
    assert "other settings (samples: 16, now 17)" in capsys.readouterr().err
    assert main([*argv[:2], str(tmp_path / "empty"), *argv[3:], "--cached"]) == 2
