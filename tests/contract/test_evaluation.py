"""What every backend promises for evaluation: a randomized model is scored under the named protocols with
consistent worst cases, a deterministic one white-box, and minimum-norm attacks respect their L2 budget."""

import numpy as np
import pytest

from rna_core import attacks as A
from rna_core.data import load_bundled
from rna_core.evaluation import evaluate, trials


@pytest.fixture(scope="module")
def data():
    return load_bundled("test").subset(32)


def test_random_model_protocols_and_worst_case(make_classifier, data):
    clf = make_classifier("bn+in")
    m = evaluate(clf, data, {"PGD-2": [A.pgd(2)], "AutoAttack-rand": A.autoattack_rand(steps=2, eot=2)}, "all",
                 eot=2, seed=0, progress=False, answers=3, transfer_draws=2)
    assert m["protocol"] == "paper+adaptive+oracle" and m["n"] == 32 and m["answers"] == 3
    for col in ("PGD-2", "AutoAttack-rand"):
        members = [m[f"{col}/{k}"] for k in ("paper", "eot", "transfer")]
        assert m[f"{col}/adaptive"] <= min(members)
        assert m[f"{col}/adaptive/persistent"] <= m[f"{col}/adaptive"]
        assert f"{col}/oracle" in m
    assert m["worst-case/adaptive"] <= min(m["PGD-2/adaptive"], m["AutoAttack-rand/adaptive"])
    assert m["worst-case/paper"] <= min(m["PGD-2/paper"], m["AutoAttack-rand/paper"])
    assert "worst-case/oracle" not in m, "the known-draw diagnostic never enters a worst case"
    assert m["clean/persistent"] <= m["clean"] and m["clean/se"] >= 0


def test_per_example_answers_draw_for_every_image(make_classifier, data):
    clf = make_classifier("bn+in")
    drawn = []
    with clf.controller.observe(lambda _: drawn.append(1)):
        m = evaluate(clf, data.subset(4), [], answers=2, answer="per-example", progress=False)
    assert len(drawn) == 4 * 2 and m["answer"] == "per-example" and 0 <= m["clean/persistent"] <= m["clean"]


def test_deterministic_model_is_scored_white_box(make_classifier, data):
    m = evaluate(make_classifier("bn"), data, [A.pgd(2), A.fgsm()], seed=0, progress=False)
    assert m["protocol"] == "white-box" and {"PGD-2/white-box", "FGSM/white-box"} <= set(m)
    assert m["worst-case/white-box"] <= min(m["PGD-2/white-box"], m["FGSM/white-box"]) <= m["clean"]


def test_minimum_norm_attacks_respect_their_budget(make_classifier, data):
    m = evaluate(make_classifier("bn"), data, [A.deepfool(3), A.cw(5, eps=0.0)], seed=0,
                 progress=False)
    assert m["CW/white-box"] == m["clean"], "a zero L2 budget breaks nothing"
    assert m["DeepFool/median-l2/white-box"] is None or m["DeepFool/median-l2/white-box"] > 0


def test_trials_report_their_spread(make_classifier, data):
    t = trials(make_classifier("bn+in"), data, [A.pgd(1)], n=2, progress=False)
    assert len(t["clean"]["trials"]) == 2 and t["clean"]["min"] <= t["clean"]["mean"] <= t["clean"]["max"]


def _bad_inputs():
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 1, 12, 12), dtype=np.float32), np.arange(4)
    nan = x.copy()
    nan[0, 0, 0, 0] = np.nan
    return {
        "nan pixel": (nan, y, "NaN or infinite"), "inf pixel": (x + np.inf, y, "NaN or infinite"),
        "above 1": (x * 255, y, r"must lie in \[0, 1\]"), "uint8": ((x * 255).astype(np.uint8), y, "float images"),
        "3 channels": (np.repeat(x, 3, 1), y, "expected images N x 1"), "rank 3": (x[:, 0], y, "expected images"),
        "label 10": (x, np.array([0, 1, 2, 10]), r"labels must lie in \[0, 10\)"),
        "label -1": (x, np.array([0, 1, 2, -1]), r"labels must lie in \[0, 10\)"),
        "float labels": (x, y.astype(np.float32), "labels must be integers"),
        "label count": (x, y[:3], r"labels of shape \(4,\)"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_bad_images_and_labels_fail_before_any_attack(make_classifier, case):
    from rna_core.evaluation import craft

    x, y, message = _bad_inputs()[case]
    with pytest.raises(ValueError, match=message):
        craft(make_classifier("bn"), x, y, A.pgd(1), np.random.default_rng(0))


def test_data_with_another_class_count_is_refused(make_classifier, data):
    from rna_core.data import ArrayDataset

    other = ArrayDataset(data.x, data.y, 100, data.mean, data.std)
    with pytest.raises(ValueError, match="100 classes but the model 10"):
        evaluate(make_classifier("bn"), other, [A.pgd(1)], progress=False)
