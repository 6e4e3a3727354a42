"""Evaluation on briefly trained torch models: APGD under EOT is as strong as EOT-PGD, the sanity flags fire on a
gradient-masked model and stay quiet on a plain one, studies and the CLI (model card, sanity) run."""

import json

import numpy as np
import pytest

import rna_core
from rna_core import attacks as A
from rna_core.apps import studies
from rna_core.apps.cli import main
from rna_core.apps.sanity import run_checks
from rna_core.data import load_bundled
from rna_core.evaluation import evaluate

TINY = {"arch": "small_cnn", "width": 8, "train_samples": 2048, "batch_size": 64, "epochs": 2,
        "train_attack.steps": 3}


@pytest.fixture(scope="module")
def rna(tmp_path_factory):
    run = tmp_path_factory.mktemp("rna")
    res = rna_core.train("quick", "torch", run, progress=False, evaluate_at_end=False, **TINY)
    return res.classifier, load_bundled("test").subset(200), run


@pytest.fixture(scope="module")
def bn(tmp_path_factory):
    run = tmp_path_factory.mktemp("bn")
    res = rna_core.train("quick", "torch", run, progress=False, evaluate_at_end=False,
                         **dict(TINY, norms="bn", method="madry"))
    return res.classifier, load_bundled("test").subset(200)


def test_apgd_under_eot_is_as_strong_as_eot_pgd(rna):
    clf, data, _ = rna
    m = evaluate(clf, data, [A.pgd(20, 8 / 255, 2 / 255), A.apgd("ce", 20)], "adaptive", eot=4,
                 seed=0, progress=False, answers=10)
    # within two standard errors (clustered by answer draw): the same images, a different attack
    assert m["APGD-CE/eot"] <= m["PGD-20/eot"] + 2 * m["PGD-20/eot/se"], (m["APGD-CE/eot"], m["PGD-20/eot"])
    assert m["PGD-20/eot"] < m["clean"], "the adaptive attack must hurt a two-epoch model"


def test_flags_fire_on_a_gradient_masked_model_and_stay_quiet_on_a_plain_one(bn):
    """Logits scaled by 1e4 saturate the softmax: cross-entropy gradients underflow to zero, PGD barely moves, and
    the gradient-free Square attack (which reads margins) beats it."""
    clf, data = bn
    suite = {"PGD-10": [A.pgd(10)], "APGD-CE": [A.apgd("ce", 20)], "Square": [A.square(1000)]}

    def flags():
        return evaluate(clf, data, suite, seed=0, progress=False)["flags"]

    quiet = flags()
    assert quiet == [], quiet
    state = clf.backend.get_state(clf.model)
    try:
        clf.backend.set_state(clf.model, {"fc.weight": state["fc.weight"] * 1e4, "fc.bias": state["fc.bias"] * 1e4},
                              strict=False)
        masked = flags()
    finally:
        clf.backend.set_state(clf.model, state)
    assert any("gradient-free Square" in f for f in masked), masked


def test_sanity_sweeps_eps_to_a_budget_that_erases_every_image(rna):
    """The eps curve runs to 128/255 (>= 0.5: any image can become one gray image, so no more than chance may
    survive there); the 4 eps reading is information, never a failure."""
    clf, data, _ = rna
    checks = run_checks(clf, data.subset(64), steps=3, eot=2, trials=2, queries=20, answers=2)
    assert checks[0].name.startswith("the model is better than chance") and checks[0].passed
    curve = checks[1].detail
    assert "16/255" in curve and "64/255" in curve and "128/255" in curve and "256/255" not in curve
    erased = next(c for c in checks if c.name.startswith("at eps >= 0.5"))
    assert "128/255" in erased.detail and erased.passed, erased  # PGD-3 at 0.5 leaves this small model nothing
    info = [c for c in checks if c.info]
    assert len(info) == 1 and str(info[0]).startswith("[INFO] accuracy at 4 eps") and "32/255" in info[0].detail
    assert all(str(c).startswith(("[PASS]", "[FAIL]", "[INFO]")) for c in checks)


def test_studies_write_json_and_png(rna, tmp_path):
    pytest.importorskip("matplotlib")
    clf, data, _ = rna
    tm = studies.transfer_matrix(clf, data, A.pgd(2), tmp_path, n=32)
    assert np.array(tm["accuracy"]).shape == (2, 2)
    pd = studies.path_difference(clf, data, A.pgd(2), tmp_path, n=32, pairs=2, distances=[0, 2, 4])
    assert [r["distance"] for r in pd["rows"]] == [0, 2, 4]
    gs = studies.gradient_similarity(clf, data, tmp_path, n=32, pairs=2)
    assert set(gs["cosine"]) == {"bn vs in", "random path pairs"}
    assert all(-1.0001 <= v <= 1.0001 for v in gs["cosine"]["bn vs in"])
    assert {p.name for p in tmp_path.iterdir()} >= {"transfer_matrix.png", "path_difference.json",
                                                    "gradient_similarity.png"}


def test_cli_evaluate_writes_a_model_card(rna, tmp_path, capsys):
    _, _, run = rna
    assert main(["evaluate", str(run), "--samples", "32", "--attacks", "pgd:2,autoattack-rand:2", "--eot", "2",
                 "--answers", "3", "--protocol", "all", "--trials", "2", "--quiet", "--by-class", "--report",
                 str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "Model card" in out and "AutoAttack-rand" in out and "oracle (diagnostic)" in out
    report = json.loads((tmp_path / "r" / "card.json").read_text())
    card = report["card"]
    assert card["evaluation"]["answers_per_image"] == 3 and card["model"]["sha256"]
    assert card["headline"]["key"] == "worst-case/adaptive" and "persistent" in card["headline"]
    assert card["threat_model"][0] == {"norm": "Linf", "eps": 8 / 255, "eps_255": 8.0}
    assert card["forward_passes_per_image"]["PGD-2/paper"] == 2 and "trials" in report
    per_class = card["per_class"]["worst-case/adaptive"]
    assert sum(per_class["n"]) == 32 and "### Accuracy per class (%)" in out
    assert abs(sum(n * e for n, e in zip(per_class["n"], per_class["expected"], strict=True) if n) / 32
               - card["headline"]["expected"]) < 1e-9
    code = main(["sanity", str(run), "--samples", "32", "--steps", "2", "--eot", "2", "--trials", "2",
                 "--queries", "10", "--answers", "2", "--quiet"])
    text = capsys.readouterr().out
    assert code in (0, 1) and "[PASS]" in text + "[FAIL]" and ("WARN" in text or "no sanity flags" in text)
