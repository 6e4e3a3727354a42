"""The MindSpore backend behind the core: canonical names, training through rna_core.train, checkpoints."""

import numpy as np
import pytest

import rna_core
from rna_core.classifier import build_classifier
from rna_core.registry import get_backend


@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_train_blackbox_end_to_end(tmp_path, mode):
    res = rna_core.train("quick", get_backend("mindspore", mode=mode), tmp_path, progress=False, width=4,
                         train_samples=128, batch_size=64, epochs=1, eval_samples=32, eval_eot=2,
                         **{"train_attack.steps": 2, "eval_attack.steps": 2})
    assert len(res.history) == 1 and np.isfinite(res.history[0]["train_loss"])
    assert {"clean", "PGD-2/paper", "PGD-2/adaptive"} <= set(res.final)


def test_names_match_torch_and_checkpoint_loads(tmp_path):
    pytest.importorskip("torch")
    spec = {"name": "resnet18", "num_classes": 10, "in_channels": 1, "width": 4}
    ms_clf = build_classifier(spec, "bn+in", True, "mindspore", np.random.default_rng(0))
    th_clf = build_classifier(spec, "bn+in", True, "torch", np.random.default_rng(0))
    ms_state = ms_clf.backend.get_state(ms_clf.model)
    th_state = th_clf.backend.get_state(th_clf.model)
    assert set(ms_state) == set(th_state)
    assert all(ms_state[k].shape == th_state[k].shape for k in th_state)


@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_ctrw_attacks_one_noise_draw_and_keeps_sigma_in_bounds(mode):
    from rna_core.algorithms import ALGORITHMS
    from rna_core.attacks import pgd
    from rna_core.backend import SGDConfig
    from rna_core.recipes import get_recipe

    recipe = get_recipe("quick-ctrw", train_attack=pgd(2, 8 / 255, 2 / 255), sigma_lower=20.0, sigma_upper=60.0)
    arch = {"name": "small_cnn", "num_classes": 10, "in_channels": 1, "width": 4,
            "ctrw": {"position": 0, "variant": "in", "image_size": [12, 12]}}
    clf = build_classifier(arch, "bn", True, get_backend("mindspore", mode=mode), np.random.default_rng(0))
    opt = clf.backend.make_optimizer(clf.model, SGDConfig(0.5, 0.9, 5e-4))
    rng = np.random.default_rng(1)
    x, y = rng.random((8, 1, 12, 12), dtype=np.float32), rng.integers(0, 10, 8)
    seen = []
    with clf.controller.observe(lambda d: seen.append(d.noise.copy())):
        for step in range(3):
            del seen[:]
            ALGORITHMS["ctrw"](clf, opt, x, y, recipe, np.random.default_rng(step))
            assert all(np.array_equal(n, seen[0]) for n in seen[:-1]) and not np.array_equal(seen[-1], seen[0])
            total = clf.backend.get_params(clf.model, ["ctrw.sigma"])["ctrw.sigma"].sum()
            assert 20.0 - 1e-3 <= total <= 60.0 + 1e-3, f"step {step}: sum(sigma) = {total}"


def test_train_ctrw_end_to_end_graph_mode(tmp_path):
    res = rna_core.train("quick-ctrw", get_backend("mindspore", mode="graph"), tmp_path, progress=False, width=4,
                         arch="small_cnn", train_samples=128, batch_size=64, epochs=1, eval_samples=32, eval_eot=2,
                         **{"train_attack.steps": 2, "eval_attack.steps": 2})
    assert {"clean", "PGD-2/paper", "PGD-2/adaptive"} <= set(res.final)
    clf = res.classifier
    total = clf.backend.get_params(clf.model, clf.sigma_names)["ctrw.sigma"].sum()
    assert res.recipe.sigma_lower - 1e-2 <= total <= res.recipe.sigma_upper + 1e-2
