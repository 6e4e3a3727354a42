"""From a user's own code: tensors, loaders and numpy in, the same numbers as the data-set path for the same seed;
adversarial examples out in the caller's framework; a checkpoint loads seeded and evaluates to the end-of-training
numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rna_core
from rna_core.data import load_bundled

DATA = load_bundled("test").subset(24)
X = torch.from_numpy(DATA.x.astype(np.float32) / 255)
Y = torch.from_numpy(DATA.y)


def _model(norms: str = "bn+in"):
    return rna_core.create_model("small_cnn", norms, num_classes=10, in_channels=1, width=4, seed=0)


def _numbers(result: dict) -> dict:
    return {k: v for k, v in result.items() if isinstance(v, float)}


def test_tensors_loaders_and_numpy_give_the_data_sets_numbers():
    clf = _model()
    kwargs = dict(attacks=["pgd:2"], eot=2, answers=2, seed=1, batch_size=8, progress=False)
    want = _numbers(rna_core.evaluate(clf, DATA, **kwargs))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=8)
    for form in [(X, Y), (DATA.x, DATA.y), (X.numpy(), Y.numpy()), loader, torch.utils.data.TensorDataset(X, Y)]:
        assert _numbers(rna_core.evaluate(clf, form, **kwargs)) == want
    again = _numbers(rna_core.evaluate(clf, DATA, **kwargs))
    assert again == want and rna_core.evaluate(clf, DATA, **kwargs)["seed"] == 1


def test_the_attack_api_returns_the_callers_tensors_and_evaluates_examples():
    det = _model("bn")
    adv = rna_core.attack(det, X, Y, "pgd", eps=8 / 255, steps=3)
    assert isinstance(adv, torch.Tensor) and adv.dtype == X.dtype and adv.device == X.device
    assert torch.equal(adv, rna_core.attack(det, X, Y, "pgd", eps=8 / 255, steps=3))  # seeded by default
    assert 0 < float((adv - X).abs().max()) <= 8 / 255 + 1e-6
    white_box = rna_core.evaluate(det, DATA, [rna_core.pgd(3, 8 / 255, 2 / 255)], seed=0, progress=False)
    assert rna_core.score_examples(det, adv, Y).expected == white_box["PGD-3/white-box"]  # the same examples
    out = rna_core.attack(_model(), DATA.x, DATA.y, rna_core.apgd("ce", 2), draw="held")
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == DATA.x.shape
    assert rna_core.attack(_model(), X[:4], Y[:4], "autoattack-rand", steps=2, eot=2).shape == X[:4].shape
    with pytest.raises(KeyError, match=r"unknown attack field\(s\) \['stepz'\]"):
        rna_core.attack(det, X, Y, "pgd", stepz=3)
    with pytest.raises(ValueError, match="draw='held'"):
        rna_core.attack(_model(), X, Y, "pgd", eot=4, draw="held")


def test_a_checkpoint_loads_seeded_and_evaluates_to_its_end_of_training_numbers(tmp_path):
    result = rna_core.train("quick", "torch", tmp_path / "run", progress=False, epochs=1, train_samples=64,
                            batch_size=16, eval_samples=16, width=4, arch="small_cnn", method="clean",
                            checkpoint_every=0, eval_eot=2, eval_answers=2, **{"eval_attack.steps": 2})
    assert _numbers(rna_core.evaluate_checkpoint(result.run_dir, progress=False)) == _numbers(result.final)
    a, b = (rna_core.load_classifier(result.run_dir, "torch", device="cpu") for _ in range(2))
    assert a.meta["epoch"] == 0 and rna_core.score_examples(a, X, Y) == rna_core.score_examples(b, X, Y)


class _Killed(KeyboardInterrupt):
    """What Ctrl-C raises, here from inside a forward."""


def test_a_killed_evaluation_keeps_the_finished_attacks_and_resumes_to_the_same_numbers(tmp_path):
    clf = _model()
    kwargs = dict(attacks=["pgd:2", "fgsm", "apgd-ce:3"], eot=2, answers=2, seed=3, batch_size=8, progress=False)
    want = _numbers(rna_core.evaluate(clf, DATA, **kwargs))
    forwards = [0]

    def kill_in_the_third_column(_):  # clean 3 x 2, PGD-2: 3 x (2 + 2 + 4 + 2): the kill lands inside FGSM
        forwards[0] += 1
        if forwards[0] == 45:
            raise _Killed

    with pytest.raises(_Killed), clf.controller.observe(kill_in_the_third_column):
        rna_core.evaluate(clf, DATA, save_dir=tmp_path / "ev", **kwargs)
    import json

    kept = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert kept["done"] == ["clean", "PGD-2"] and not kept["complete"]
    assert kept["metrics"]["PGD-2/adaptive"] == want["PGD-2/adaptive"] and "FGSM/paper" not in kept["metrics"]
    resumed = rna_core.evaluate(clf, DATA, save_dir=tmp_path / "ev", **kwargs)
    assert _numbers(resumed) == want
    assert json.loads((tmp_path / "ev" / "evaluation.json").read_text())["complete"]
    with pytest.raises(ValueError, match="other settings.*eot"):
        rna_core.evaluate(clf, DATA, save_dir=tmp_path / "ev", **dict(kwargs, eot=3))


def test_a_loader_that_shuffles_is_refused_by_name():
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=8, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="changed between passes.*shuffle=False"):
        rna_core.evaluate(_model(), loader, ["pgd:1"], eot=1, answers=1, progress=False)
