"""One checkpoint, two backends: a model trained on one evaluates to the same clean accuracy (same paths) on
the other."""

import numpy as np
import pytest

import rna_core
from rna_core.classifier import build_classifier, load_classifier
from rna_core.data import load_bundled
from rna_core.evaluation import evaluate

TINY = {"width": 4, "train_samples": 1024, "batch_size": 64, "epochs": 1, "method": "clean", "lr": 0.1,
        "crop_padding": 0}


@pytest.mark.parametrize("source", ["torch", "mindspore"])
def test_checkpoint_crosses_backends(tmp_path, source):
    rna_core.train("quick", source, tmp_path, progress=False, evaluate_at_end=False, **TINY)
    data = load_bundled("test").subset(100)
    accs = {}
    for target in ("torch", "mindspore"):
        clf = load_classifier(tmp_path, target, seed=5)
        accs[target] = evaluate(clf, data, [], batch_size=25, progress=False)["clean"]
    print(f"\ntrained on {source}: clean accuracy (same paths) {accs}")
    assert abs(accs["torch"] - accs["mindspore"]) <= 0.01
    assert accs["torch"] > 0.2, "the model should be better than chance"


def test_canonical_names_and_shapes_match():
    spec = {"name": "resnet18", "num_classes": 10, "in_channels": 1, "width": 4}
    states = [build_classifier(spec, "bn+in+gn:2", True, b, np.random.default_rng(0)) for b in ("torch", "mindspore")]
    torch_state, ms_state = (c.backend.get_state(c.model) for c in states)
    assert set(ms_state) == set(torch_state)
    assert all(ms_state[k].shape == v.shape for k, v in torch_state.items())
