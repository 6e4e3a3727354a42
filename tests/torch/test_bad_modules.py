"""A user's module is checked on its first batch and every answer after; a run directory is decided under its lock;
a finite loss explosion and a foreign random stream on resume are refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import rna_core
from rna_core import pgd
from rna_core.classifier import build_classifier
from rna_core.data import load_bundled
from rna_core.torch import randomize

TINY = {"arch": "small_cnn", "width": 4, "train_samples": 64, "batch_size": 16, "epochs": 1, "eval_samples": 16,
        "method": "clean", "checkpoint_every": 0}


class Head(nn.Module):
    """Flatten and a linear head, with ``out`` applied to the logits (NaN, a wrong shape, a tuple...)."""

    def __init__(self, classes: int = 10, out=lambda z: z) -> None:
        super().__init__()
        self.fc, self.out, self.calls = nn.Linear(28 * 28, classes), out, 0

    def forward(self, x):
        self.calls += 1
        return self.out(self.fc(x.flatten(1)))


@pytest.mark.parametrize("module, error, message", [
    (Head(out=lambda z: z * float("nan")), ValueError, "NaN or infinite logits for 8 of 8 images"),
    (Head(out=lambda z: z.masked_fill(z > 0, float("inf"))), ValueError, "NaN or infinite logits"),
    (Head(classes=7), ValueError, r"shape \(8, 7\) for 8 images; expected logits of shape \(8, 10\)"),
    (Head(out=lambda z: z.sum(1)), ValueError, r"outputs of shape \(8,\)"),
    (Head(out=lambda z: (z, z)), TypeError, "must return one logits tensor, it returned a tuple"),
    (Head(out=lambda z: z.long()), ValueError, "int64 outputs; expected float logits"),
], ids=["nan", "inf", "classes", "1-d", "tuple", "int"])
def test_a_broken_module_is_refused_on_its_first_batch(module, error, message):
    with pytest.raises(error, match=message):
        rna_core.evaluate(module, load_bundled("test").subset(16), [pgd(2)], progress=False)


def test_logits_that_turn_non_finite_later_are_an_error_not_a_score():
    late = Head(out=lambda z: z if late.calls <= 3 else z * float("nan"))
    with pytest.raises(FloatingPointError, match="NaN or infinite logits"):
        rna_core.evaluate(late, load_bundled("test").subset(32), [pgd(2)], batch_size=8, progress=False)


def test_a_data_set_without_num_classes_is_checked_against_the_module():
    class Plain:  # images and labels only: the class count comes from the module
        def __init__(self, data):
            self.data = data

        def __len__(self):
            return len(self.data)

        def batch(self, idx):
            return self.data.batch(idx)

    data = Plain(load_bundled("test").subset(16))
    assert rna_core.evaluate(Head(), data, [], progress=False)["clean"] >= 0
    with pytest.raises(ValueError, match="label"):
        rna_core.evaluate(Head(classes=5), data, [], progress=False)


def test_a_random_weight_on_a_sequential_is_applied_once():
    seq = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 28 * 28, 1 * 28 * 28))  # logits of the input's size: no shape error to see
    model = randomize(seq, "bn+in", random_weight="0", input_shape=(1, 28, 28))
    assert "0.rna_random_weight.mu" in dict(model.named_parameters())
    calls = []
    model.get_submodule("0.rna_random_weight").register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        model.eval()(torch.rand(2, 1, 28, 28))
    assert len(calls) == 1


def test_a_failing_randomize_leaves_a_sequential_unchanged():
    seq = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    kinds = [type(m) for m in seq.modules()]
    with pytest.raises(ValueError, match="no submodule of that name"):
        randomize(seq, "bn+in", random_weight="7", input_shape=(1, 28, 28))
    assert [type(m) for m in seq.modules()] == kinds and randomize(seq, "bn+in").rna.space.num_layers == 1


def test_path_studies_refuse_a_model_without_paths(tmp_path):
    from rna_core.apps import studies

    clf = build_classifier({"name": "small_cnn", "num_classes": 10, "in_channels": 1, "width": 4}, "bn", True,
                           "torch", np.random.default_rng(0), seed=0)
    with pytest.raises(ValueError, match="gradients"):
        studies.gradient_similarity(clf, load_bundled("test").subset(8), tmp_path, n=8, pairs=2)


def test_a_finite_explosion_stops_training(tmp_path):
    from rna_core.training import TrainingDiverged

    with pytest.raises(TrainingDiverged, match="exploded|non-finite|became"):
        rna_core.train("quick", "torch", tmp_path / "run", progress=False, evaluate_at_end=False,
                       **dict(TINY, lr=1e10))
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_resume_refuses_a_foreign_random_stream(tmp_path):
    run = tmp_path / "run"
    rna_core.train("quick", "torch", run, progress=False, evaluate_at_end=False, **TINY)
    sidecar = run / json.loads((run / "latest.json").read_text())["checkpoint"]
    meta = json.loads(sidecar.with_suffix(".json").read_text())
    meta["rng"]["path"] = {"bit_generator": "MT19937", "state": {}}
    sidecar.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="sidecar key 'rng.path' is not a saved PCG64 state"):
        rna_core.train("quick", "torch", run, resume=True, progress=False, evaluate_at_end=False, **TINY)
