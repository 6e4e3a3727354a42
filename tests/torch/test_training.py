"""The CLI end to end on the bundled data with a tiny network (train, evaluate, report, errors)."""

import json
from pathlib import Path

import numpy as np

from rna_core.apps.cli import main

TINY = {"width": 4, "train_samples": 256, "batch_size": 64, "epochs": 2, "eval_samples": 64,
        "train_attack.steps": 2, "eval_attack.steps": 3, "eval_eot": 2}


def test_cli_train_evaluate_and_errors(tmp_path, capsys):
    assert main(["recipes"]) == 0
    assert "paper-cifar10-rna" in capsys.readouterr().out
    sets = [arg for k, v in dict(TINY, epochs=1).items() for arg in ("--set", f"{k}={v}")]
    assert main(["train", "--recipe", "quick", *sets, "--set", "norms=bn", "--set", "method=madry",
                 "--out", str(tmp_path / "bn"), "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["test"]["PGD-3/white-box"] <= out["test"]["clean"]
    assert main(["evaluate", str(tmp_path / "bn"), "--samples", "32", "--attacks", "pgd:2,fgsm", "--quiet",
                 "--report", str(tmp_path / "report")]) == 0
    text = capsys.readouterr().out
    assert "| model | threat model | Natural | FGSM | PGD-2 | worst case |" in text and "| white-box |" in text
    assert json.loads((tmp_path / "report" / "card.json").read_text())["metrics"]["protocol"] == "white-box"
    assert main(["train", "--set", "epoch=1", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "unknown recipe key 'epoch'" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing"), "--quiet"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err


def test_the_smoke_recipe_runs_end_to_end(tmp_path, capsys):
    """``rna-core compare --recipe smoke`` (the install check): two trainings, both protocols, the table the README
    prints (every cell within 10 points of the README's: three standard errors at 200 images; the same machine
    and software give it to the digit, another CPU's kernels round differently over four epochs); then a model
    card of one run."""
    assert main(["compare", "--recipe", "smoke", "--out", str(tmp_path / "smoke"), "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "| bn (madry) | white-box |" in table and "| bn+in (blackbox) | adaptive" in table
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    printed = readme.split("<!-- output: rna-core compare --recipe smoke --quiet -->")[1].split("<!-- /output")[0]
    ours, theirs = _cells(table), _cells(printed)
    assert ours.keys() == theirs.keys() and len(ours) == 3, (ours, theirs)
    for row, values in ours.items():
        assert np.allclose(values, theirs[row], atol=10.0), (row, values, theirs[row])
    assert main(["evaluate", str(tmp_path / "smoke" / "bn_in"), "--samples", "16", "--attacks", "pgd:2", "--eot", "2",
                 "--answers", "2", "--quiet", "--report", str(tmp_path / "card")]) == 0
    assert "Model card" in (tmp_path / "card" / "card.md").read_text()


def _cells(text: str) -> dict[tuple[str, str], list[float]]:
    """The accuracy cells of a compare table by (model, threat model's first word)."""
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| bn")]
    return {(r[0].strip(), r[1].split()[0]): [float(v) for c in r[2:] for v in c.split("/")] for r in rows}
