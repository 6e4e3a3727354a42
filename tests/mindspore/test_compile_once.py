"""GRAPH_MODE compiles each program of a model once: after the first training step, attack and forward, more
steps on fresh paths, more attacks and more evaluation batches of the same shape compile no new graph."""

import numpy as np
from mindspore.graph import api as ms_api

from rna_core import attacks as A
from rna_core.backend import SGDConfig
from rna_core.classifier import build_classifier
from rna_core.losses import CE_MEAN
from rna_core.methods import Step
from rna_core.registry import get_backend


def _work(be, clf, opt, x, y, seed: int) -> None:
    for _ in range(3):
        Step(clf, opt, None, None, 0.01).descend(CE_MEAN, x, y)
    clf.model.set_train(False)
    A.attack(be, clf.model, x, y, A.pgd(2), np.random.default_rng(seed))
    A.attack(be, clf.model, x, y, A.apgd("dlr", 2), np.random.default_rng(seed))
    for _ in range(2):
        clf.logits(x)


def test_steps_attacks_and_batches_reuse_the_graphs():
    be = get_backend("mindspore", mode="graph")
    clf = build_classifier({"name": "resnet18", "num_classes": 10, "in_channels": 1, "width": 4}, "bn+in+gn:2",
                           True, be, np.random.default_rng(0), 0)
    opt = be.make_optimizer(clf.model, SGDConfig(0.01, 0.9, 5e-4))
    rng = np.random.default_rng(1)
    x = be.ops.tensor(rng.random((8, 1, 12, 12), dtype=np.float32))
    y = be.ops.tensor(rng.integers(0, 10, 8))
    _work(be, clf, opt, x, y, 0)
    graphs = len(ms_api.ms_compile_cache)
    seen = set()
    with clf.controller.observe(lambda d: seen.add(tuple(d.path))):
        for seed in range(1, 3):
            _work(be, clf, opt, x, y, seed)
    assert len(seen) > 1, "the model drew one path only"
    assert len(ms_api.ms_compile_cache) == graphs, "a later step, attack or batch compiled a new graph"
