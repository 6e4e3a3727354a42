"""Scoring over R fresh answers (expected and persistent accuracy, standard errors), and the threat-model plumbing
of ``evaluate`` on a numpy toy model whose answers have a known distribution (no framework needed)."""

import numpy as np
import pytest

from rna_core import attacks as A
from rna_core import models
from rna_core.apart import BNLayout
from rna_core.attacks import KINDS, AttackKind, AttackSpec, register_attack
from rna_core.backend import Backend
from rna_core.classifier import Classifier
from rna_core.controller import DrawController
from rna_core.data import ArrayDataset
from rna_core.evaluation import evaluate, parse_protocols
from rna_core.ops import NumpyOps
from rna_core.paths import PathSpace
from rna_core.scoring import combine, per_class, score

P_CORRECT = 0.7


def test_expected_and_persistent_of_a_coin_with_known_bias():
    rng = np.random.default_rng(0)
    correct = rng.random((4000, 10)) < P_CORRECT
    s = score([correct], np.arange(4000))
    assert abs(s.expected - P_CORRECT) < 3 * s.expected_se and s.expected_se < 0.01
    assert abs(s.persistent - P_CORRECT**10) < 3 * s.persistent_se + 1e-3  # 0.7^10 = 0.028


def test_worst_case_takes_each_examples_worst_attack():
    a = np.array([[1, 1], [1, 0], [0, 0]], bool)
    b = np.array([[1, 0], [1, 1], [1, 1]], bool)
    expected, persistent = combine([a, b])
    np.testing.assert_array_equal(expected, [0.5, 0.5, 0.0])
    np.testing.assert_array_equal(persistent, [False, False, False])


def test_per_class_accuracy_is_the_mean_of_each_classs_worst_case():
    a = np.array([[1, 1], [0, 1], [1, 1], [0, 0], [1, 0]], bool)
    b = np.array([[1, 0], [1, 1], [1, 1], [0, 0], [1, 1]], bool)
    y = np.array([0, 0, 2, 2, 0])
    got = per_class([a, b], y, 4)
    assert got["n"] == [3, 0, 2, 0]
    # per example: expected min(1, .5), min(.5, 1), 1, 0, min(.5, 1); persistent only example 2
    np.testing.assert_allclose(got["expected"][0], (0.5 + 0.5 + 0.5) / 3)
    assert got["expected"][2] == 0.5 and got["persistent"] == [0.0, None, 0.5, None]
    with pytest.raises(ValueError, match="4 labels for 5"):
        per_class([a], y[:4], 4)


def test_standard_error_covers_the_spread_of_shared_draws():
    """Batches of 50 answered by one draw each: the draw noise dominates and the SE must see it."""
    rng = np.random.default_rng(1)
    estimates, ses = [], []
    for _ in range(200):
        p_example = rng.uniform(0.4, 0.9, 500)
        batch_shift = rng.normal(0, 0.1, (10, 5))  # one draw per batch and answer moves a whole batch
        correct = rng.random((500, 5)) < np.clip(p_example[:, None] + np.repeat(batch_shift, 50, axis=0), 0, 1)
        s = score([correct], np.repeat(np.arange(10), 50))
        estimates.append(s.expected)
        ses.append(s.expected_se)
    assert 0.7 < np.mean(ses) / np.std(estimates) < 1.4


class CoinBackend(Backend):
    """A numpy toy: each answer is right with probability 0.7 per example and draw (from the draw's noise), and an
    adversarial image fools exactly the draw it was crafted on (it carries that path's code in its first pixel)."""

    name = "coin"
    ops = NumpyOps()

    def logits(self, model, x, draw):
        path, noise = draw
        right = (noise[: len(x)] < 0.5244005) & (np.round(x[:, 0, 0, 0] * 255) != _code(path))  # Phi(0.5244) = 0.7
        return np.where(right[:, None], np.eye(10)[model.labels[: len(x)]], np.eye(10)[(model.labels[: len(x)] + 1)
                                                                                      % 10])

    def _unused(self, *args, **kwargs):
        raise NotImplementedError

    describe = build_model = get_state = set_state = get_params = set_params = make_optimizer = _unused
    update = value_and_grad = _unused


def _code(path: np.ndarray) -> int:
    return int((path * 2 ** np.arange(len(path))).sum() + 1)


def _coin_attack(oracle, x, y, spec, rng):
    """The toy's attack, registered as ``coin`` (an attack is one declaration): the image carries the code of the
    draw it is crafted on."""
    adv = np.array(x)
    adv[:, 0, 0, 0] = _code(oracle.draw().path) / 255
    return adv


if "coin" not in KINDS:
    register_attack(AttackKind("coin", _coin_attack, lambda spec: f"Coin-{spec.steps}"))


class CoinModel:
    """The toy's model (``rna_core.model.Model``)."""

    num_classes, in_channels, holdable = 10, 1, True
    bn_layout, sigma_names = BNLayout((), (), ()), ()

    def __init__(self, controller: DrawController) -> None:
        self.controller, self.labels = controller, None

    def set_train(self, mode: bool = True) -> None:
        pass


@pytest.fixture
def coin():
    graph = models.create("small_cnn", in_channels=1)
    controller = DrawController(PathSpace.uniform("bn+in", 4), np.random.default_rng(0), noise_size=400)
    model = CoinModel(controller)
    clf = Classifier(CoinBackend(), model, controller, graph, {"name": "small_cnn"})
    x = np.zeros((400, 1, 8, 8), np.uint8)
    y = np.arange(400) % 10
    model.labels = y
    return clf, ArrayDataset(x, y, 10, (0.0,), (1.0,))


def test_evaluate_scores_clean_answers_by_their_known_distribution(coin):
    clf, data = coin
    m = evaluate(clf, data, [], answers=10, seed=0, batch_size=400, answer="per-batch",
                 progress=False)
    assert abs(m["clean"] - P_CORRECT) < 0.03 and abs(m["clean/persistent"] - P_CORRECT**10) < 0.02
    assert m["answers"] == 10 and m["clean/se"] > 0


def test_the_oracle_never_enters_a_worst_case(coin):
    """The toy's adversarial images fool only the draw they were crafted on: the oracle (that draw answers) reads 0,
    while every realizable attack is answered by fresh draws and stays near the clean accuracy."""
    clf, data = coin
    m = evaluate(clf, data, [AttackSpec("coin", steps=1)], "all", eot=2, answers=10, seed=0,
                 batch_size=400, progress=False)
    assert m["Coin-1/oracle"] == 0.0
    assert m["worst-case/adaptive"] > 0.4 and m["worst-case/paper"] > 0.5  # far above the oracle's 0
    assert "worst-case/oracle" not in m and m["Coin-1/adaptive"] == m["worst-case/adaptive"]


def test_evaluate_reports_each_class_whose_weighted_mean_is_the_whole(coin):
    clf, data = coin
    m = evaluate(clf, data, [AttackSpec("coin", steps=1)], "both", eot=2, answers=10, seed=0, batch_size=100,
                 progress=False)
    assert set(m["per_class"]) == {"clean", "worst-case/paper", "worst-case/adaptive"}
    for key, d in m["per_class"].items():
        assert d["n"] == [40] * 10
        for kind, whole in (("expected", m[key]), ("persistent", m[f"{key}/persistent"])):
            np.testing.assert_allclose(np.dot(d["n"], d[kind]) / 400, whole, atol=1e-12)


def test_protocol_names():
    assert parse_protocols("both") == ("paper", "adaptive")
    assert parse_protocols("oracle+paper") == ("paper", "oracle")
    with pytest.raises(ValueError, match="protocol must be"):
        parse_protocols("fixed-path")


def test_attacks_sharing_a_label_are_refused(coin):
    clf, data = coin
    with pytest.raises(ValueError, match=r"\['APGD-CE'\] share a label"):
        evaluate(clf, data, [A.apgd("ce", 20), A.apgd("ce", 50)], progress=False)


def test_the_sanity_sweep_doubles_until_a_budget_of_one_half():
    from rna_core.apps.sanity import sweep

    assert [round(255 * e) for e in sweep(8 / 255)] == [2, 4, 8, 16, 32, 64, 128]
    assert [round(255 * e) for e in sweep(4 / 255)] == [1, 2, 4, 8, 16, 32, 64, 128]
    assert sweep(0.3)[-1] >= 0.5 and len(sweep(0.3)) == 5
