"""Protocols, reports, sanity checks and transferability studies on a briefly trained RNA model."""

import json

import numpy as np
import pytest

import rna_core
from rna_core import attacks as A
from rna_core import studies
from rna_core.cli import main
from rna_core.data import load_bundled
from rna_core.evaluation import evaluate, trials
from rna_core.reports import markdown
from rna_core.sanity import run_checks

TINY = {"width": 4, "train_samples": 512, "batch_size": 64, "epochs": 1, "train_attack.steps": 2}


@pytest.fixture(scope="module")
def rna(tmp_path_factory):
    run = tmp_path_factory.mktemp("rna")
    res = rna_core.train("quick", "torch", run, progress=False, evaluate_at_end=False, **TINY)
    return res.classifier, load_bundled("test").subset(64), run


def test_protocols_and_worst_case(rna):
    clf, data, _ = rna
    m = evaluate(clf, data, {"PGD-3": [A.pgd(3)], "AutoAttack": A.autoattack(steps=3, eot=2)}, "both", eot=2,
                 rng=np.random.default_rng(0), progress=False)
    for col in ("PGD-3", "AutoAttack"):
        assert m[f"{col}/adaptive"] <= min(m[f"{col}/fixed-path"], m[f"{col}/eot"])
    assert m["worst-case/adaptive"] <= min(m["PGD-3/adaptive"], m["AutoAttack/adaptive"])
    assert m["worst-case/paper"] <= min(m["PGD-3/paper"], m["AutoAttack/paper"])
    table = markdown({"rna": m})
    assert "paper (attack one draw, answer a fresh one)" in table and "adaptive (worst of" in table


def test_minimum_norm_attacks_report_distortion(rna):
    clf, data, _ = rna
    m = evaluate(clf, data, [A.deepfool(5), A.cw(10, eps=0.0)], "paper", rng=np.random.default_rng(0),
                 progress=False)
    assert m["DeepFool/median-l2/paper"] is None or m["DeepFool/median-l2/paper"] > 0
    assert m["CW/paper"] == m["clean"]  # a zero L2 budget breaks nothing


def test_trials_give_spread(rna):
    clf, data, _ = rna
    t = trials(clf, data, [A.pgd(2)], n=3, progress=False)
    assert len(t["clean"]["trials"]) == 3 and t["clean"]["min"] <= t["clean"]["mean"] <= t["clean"]["max"]


def test_sanity_checks_run(rna):
    clf, data, _ = rna
    checks = run_checks(clf, data, steps=3, eot=2, trials=2, queries=20)
    assert len(checks) == 5 and all(str(c).startswith(("[PASS]", "[FAIL]")) for c in checks)
    assert checks[0].passed, str(checks[0])  # PGD at eps 32/255 must break a 1-epoch model


def test_studies_write_json_and_png(rna, tmp_path):
    pytest.importorskip("matplotlib")
    clf, data, _ = rna
    tm = studies.transfer_matrix(clf, data, A.pgd(2), tmp_path, n=32)
    assert np.array(tm["accuracy"]).shape == (2, 2)
    pd = studies.path_difference(clf, data, A.pgd(2), tmp_path, n=32, pairs=2, distances=[0, 5, 20])
    assert [r["distance"] for r in pd["rows"]] == [0, 5, 20]
    gs = studies.gradient_similarity(clf, data, tmp_path, n=32, pairs=2)
    assert set(gs["cosine"]) == {"bn vs in", "random path pairs"}
    assert all(-1.0001 <= v <= 1.0001 for v in gs["cosine"]["bn vs in"])
    assert {p.name for p in tmp_path.iterdir()} >= {"transfer_matrix.png", "path_difference.json",
                                                    "gradient_similarity.png"}


def test_cli_evaluate_sanity_study(rna, tmp_path, capsys):
    _, _, run = rna
    assert main(["evaluate", str(run), "--samples", "32", "--attacks", "pgd:2,autoattack:2", "--eot", "2",
                 "--trials", "2", "--quiet", "--report", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "AutoAttack" in out and "inference trials" in out
    assert "trials" in json.loads((tmp_path / "r.json").read_text())
    code = main(["sanity", str(run), "--samples", "32", "--steps", "2", "--eot", "2", "--trials", "2",
                 "--queries", "10", "--quiet"])
    assert code in (0, 1) and "PASS" in capsys.readouterr().out + "PASS"
    assert main(["study", str(run), "gradients", "--samples", "16", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    assert (tmp_path / "s" / "gradient_similarity.png").is_file()
