"""RNA's black-box adversarial training on torch: the update trains path p only (candidates off p get no gradient,
so SGD leaves them untouched). The backend-neutral promises of every method live in tests/contract."""

import numpy as np
import torch

from rna_core.algorithms import ALGORITHMS
from rna_core.attacks import pgd
from rna_core.backend import SGDConfig
from rna_core.backends.torch.layers import NormSlot
from rna_core.classifier import build_classifier
from rna_core.recipes import get_recipe


def test_blackbox_update_leaves_candidates_off_its_path_alone():
    clf = build_classifier({"name": "resnet18", "num_classes": 10, "in_channels": 1, "width": 4}, "bn+in", True,
                           "torch", np.random.default_rng(0))
    opt = clf.backend.make_optimizer(clf.model, SGDConfig(0.1, 0.9, 5e-4))
    rng = np.random.default_rng(1)
    x, y = rng.random((8, 1, 12, 12), dtype=np.float32), rng.integers(0, 10, 8)
    before = {k: v.detach().clone() for k, v in clf.model.state_dict().items()}
    seen = []
    with clf.controller.observe(lambda d: seen.append(d.path.copy())):
        ALGORITHMS["blackbox"](clf, opt, x, y, get_recipe("quick", train_attack=pgd(3)), np.random.default_rng(7))
    p = seen[-1]
    after = clf.model.state_dict()
    for m_name, m in clf.model.named_modules():
        if not isinstance(m, NormSlot):
            continue
        for k, key in enumerate(m.keys):
            w = f"{m_name}.{key}.weight"
            changed = not torch.equal(before[w], after[w])
            assert changed == (k == p[m.slot]), f"{w}: changed={changed}, on path p={k == p[m.slot]}"
