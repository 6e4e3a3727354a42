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
