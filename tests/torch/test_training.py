"""The CLI end to end on the bundled data with a tiny network (train, evaluate, report, errors)."""

import json

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
    """``rna-core compare --recipe smoke`` (the install check): two trainings, both protocols, the table; then a
    model card of one run."""
    assert main(["compare", "--recipe", "smoke", "--out", str(tmp_path / "smoke"), "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "| bn (madry) | white-box |" in table and "| bn+in (blackbox) | adaptive" in table
    assert main(["evaluate", str(tmp_path / "smoke" / "bn_in"), "--samples", "16", "--attacks", "pgd:2", "--eot", "2",
                 "--answers", "2", "--quiet", "--report", str(tmp_path / "card")]) == 0
    assert "Model card" in (tmp_path / "card" / "card.md").read_text()
