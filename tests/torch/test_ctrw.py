"""CTRW on torch: the random-weight layer's formula, its sampling policies, and Algorithm 1 (attack one noise
draw, update on another, sigma constrained after every step)."""

from pathlib import Path

import numpy as np
import pytest
import torch

import rna_core
from rna_core.attacks import pgd
from rna_core.backend import SGDConfig
from rna_core.classifier import build_classifier, load_classifier
from rna_core.methods import take_step
from rna_core.methods.ctrw import constrain_sigma
from rna_core.recipes import get_recipe

RECIPE = get_recipe("quick-ctrw", train_attack=pgd(3, 8 / 255, 2 / 255), sigma_lower=20.0, sigma_upper=60.0)


def _setup(variant="in", position=0, lr=0.5):
    arch = {"name": "small_cnn", "num_classes": 10, "in_channels": 1, "width": 4,
            "ctrw": {"position": position, "variant": variant, "image_size": [12, 12]}}
    clf = build_classifier(arch, "bn", True, "torch", np.random.default_rng(0))
    opt = clf.backend.make_optimizer(clf.model, SGDConfig(lr, 0.9, 5e-4))
    rng = np.random.default_rng(1)
    return clf, opt, rng.random((8, 1, 12, 12), dtype=np.float32), rng.integers(0, 10, 8)


def test_random_weight_is_mu_plus_sigma_eps_times_x():
    clf, _, x, _ = _setup()
    rw = clf.model.ctrw
    with torch.no_grad():
        rw.mu.uniform_(0.5, 1.5)
        rw.sigma.uniform_(0.1, 2.0)
    with clf.controller.frozen() as draw:
        clf.model(torch.tensor(x))  # a forward loads the draw's noise
        got = rw(clf.model.normalize(torch.tensor(x))).detach().numpy().astype(np.float64)
    mu, sigma = (p.detach().numpy().astype(np.float64) for p in (rw.mu, rw.sigma))
    xn = x.astype(np.float64)  # normalize is the identity here (mean 0, std 1)
    expected = xn * (mu + sigma * draw.noise.astype(np.float64).reshape(1, 12, 12))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_noise_follows_the_sampling_policies():
    clf, _, x, _ = _setup()
    xb = torch.tensor(x)
    clf.model.set_train(False)
    with torch.no_grad():
        a, b = clf.model(xb), clf.model(xb)
        assert not torch.equal(a, b), "resample: a fresh noise draw per forward"
        with clf.controller.frozen():
            assert torch.equal(clf.model(xb), clf.model(xb))
    with pytest.raises(ValueError, match="noise vector of shape \\(144,\\)"):
        with clf.controller.fixed(rna_core.controller.Draw(clf.controller.draw().path, np.zeros(3))):
            pass


@pytest.mark.parametrize("rule, check", [
    ("fixed-middle", lambda s: np.allclose(s, 40.0 / 144)),
    ("authors", lambda s: s.min() >= 20.0 / 144 - 1e-6),
])
def test_ablation_rules(rule, check):
    clf, opt, x, y = _setup()
    recipe = RECIPE.replace(sigma_constraint=rule)
    constrain_sigma(clf, recipe)
    take_step(clf, opt, "ctrw", x, y, recipe, np.random.default_rng(0), 0.5)
    assert check(clf.sigmas()["ctrw.sigma"])


def test_without_constraint_sigma_moves_freely():
    clf, opt, x, y = _setup()
    before = clf.sigmas()["ctrw.sigma"]
    take_step(clf, opt, "ctrw", x, y, RECIPE.replace(sigma_constraint="none"), np.random.default_rng(0), 0.5)
    after = clf.sigmas()["ctrw.sigma"]
    assert after.sum() > RECIPE.sigma_upper and not np.array_equal(before, after)


def test_train_ctrw_end_to_end_and_reload(tmp_path):
    res = rna_core.train("quick-ctrw", "torch", tmp_path, progress=False, width=4, train_samples=256, batch_size=64,
                         epochs=1, eval_samples=32, eval_eot=2, **{"train_attack.steps": 2, "eval_attack.steps": 2})
    assert {"clean", "PGD-2/paper", "PGD-2/adaptive"} <= set(res.final)
    clf = load_classifier(str(tmp_path), "torch")
    total = clf.sigmas()["ctrw.sigma"].sum()
    recipe = get_recipe("quick-ctrw")
    assert recipe.sigma_lower - 1e-2 <= total <= recipe.sigma_upper + 1e-2


def test_a_run_from_before_random_weight_resumes_and_eot_trains_the_random_weight(tmp_path):
    """A CTRW run whose recipe predates the key (null: with method ctrw) resumes under quick-ctrw (true); EOT
    training of quick-ctrw trains a model with the random weight, sum(sigma) in [A, B]."""
    import json
    import shutil

    keys = dict(arch="small_cnn", width=4, train_samples=64, batch_size=32, epochs=2, progress=False,
                evaluate_at_end=False, **{"train_attack.steps": 1})
    rna_core.train("quick-ctrw", "torch", tmp_path / "old", random_weight=None, **keys)
    shutil.copytree(tmp_path / "old", tmp_path / "crashed", ignore=shutil.ignore_patterns("*e0001*", ".lock"))
    (tmp_path / "crashed" / "latest.json").write_text(json.dumps({"checkpoint": "ckpt-e0000"}))
    resumed = rna_core.train("quick-ctrw", "torch", tmp_path / "crashed", resume=True, **keys)
    assert len(resumed.history) == 2
    rna_core.train("quick-ctrw", "torch", tmp_path / "eot", method="eot", eot_attack_draws=2, **keys)
    total = load_classifier(str(tmp_path / "eot"), "torch").sigmas()["ctrw.sigma"].sum()
    bounds = get_recipe("quick-ctrw")
    assert bounds.sigma_lower - 1e-2 <= total <= bounds.sigma_upper + 1e-2


def test_ctrw_reports_write_json_and_png(tmp_path):
    from rna_core.apps import ctrw_report
    from rna_core.attacks import pgd as pgd_spec
    from rna_core.data import load_bundled

    runs = {}
    for rule in ("project", "none"):
        rna_core.train("quick-ctrw", "torch", tmp_path / rule, progress=False, width=4, arch="small_cnn",
                       train_samples=128, batch_size=64, epochs=1, evaluate_at_end=False, sigma_constraint=rule,
                       **{"train_attack.steps": 1})
        runs[rule] = tmp_path / rule
    table = ctrw_report.positive_samples(runs, tmp_path / "report", samples=500)
    assert [r["constraint"] for r in table["rows"]] == ["project", "none"]
    assert all(0 <= r["ratio"] <= 1 and r["samples"] == 500 for r in table["rows"])
    dist = ctrw_report.sigma_distribution(runs, tmp_path / "report")
    assert dist["rows"][0]["sum"] <= get_recipe("quick-ctrw").sigma_upper + 1e-2
    clf = load_classifier(str(runs["project"]), "torch")
    before = clf.sigmas()
    fig = ctrw_report.accuracy_vs_sigma(clf, load_bundled("test").subset(32), pgd_spec(1), [1.0, 500.0],
                                        tmp_path / "report", (255.0, 612.5))
    assert [r["sum_sigma"] for r in fig["rows"]] == [1.0, 500.0]
    np.testing.assert_array_equal(clf.sigmas()["ctrw.sigma"],
                                  before["ctrw.sigma"])  # the learned sigma is restored
    assert all(Path(f).is_file() for r in (table, dist, fig) for f in r["files"])
