"""APGD under EOT (the members of AutoAttack's "rand" version) against torchattacks 3.5.1 on a small randomized
(RNA) model, every example scored by the same rule (fresh answers, expected accuracy).

CI size: 128 images, 50 iterations, EOT-10 (AutoAttack-rand itself runs 100 iterations with EOT-20; the spec is
checked in tests/core/test_attack_specs.py). torchattacks' APGD is run through ``attack_single_run`` and its
highest-loss point kept for every example (its ``perturb`` returns the clean image wherever the last single draw
was not fooled, which under randomness throws good points away)."""

import numpy as np
import pytest
import torch

import rna_core
from rna_core import attacks as A
from rna_core.data import load_bundled
from rna_core.evaluation import craft, score_examples

ta = pytest.importorskip("torchattacks")
N, R, STEPS, EOT = 128, 10, 50, 10


@pytest.fixture(scope="module")
def rna(tmp_path_factory):
    res = rna_core.train("quick", "torch", tmp_path_factory.mktemp("rna"), progress=False, evaluate_at_end=False,
                         arch="small_cnn", width=16, train_samples=4096, batch_size=64, epochs=2, lr=0.02,
                         **{"train_attack.steps": 3})
    clf = res.classifier
    clf.backend.set_training(clf.model, False)
    data = load_bundled("test").subset(N)
    return clf, data.x.astype(np.float32) / 255, data.y


def _reference(clf, x, y, loss: str) -> np.ndarray:
    torch.manual_seed(0)
    attack = ta.APGD(clf.model, norm="Linf", eps=8 / 255, steps=STEPS, n_restarts=1, loss=loss, eot_iter=EOT, seed=0)
    x_best, _, _, _ = attack.attack_single_run(torch.from_numpy(x), torch.from_numpy(y))
    return x_best.detach().numpy()


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_apgd_under_eot_matches_torchattacks(rna, loss):
    clf, x, y = rna
    adv = clf.backend.numpy(craft(clf, x, y, A.apgd(loss, STEPS, eot=EOT), np.random.default_rng(0)))
    ours = score_examples(clf, adv, y, R)
    ref = score_examples(clf, _reference(clf, x, y, loss), y, R)
    clean = score_examples(clf, x, y, R)
    print(f"\nAPGD-{loss.upper()} EOT-{EOT}: rna-core {100 * ours.expected:.1f}%, torchattacks "
          f"{100 * ref.expected:.1f}% (SE {100 * ref.expected_se:.1f}), clean {100 * clean.expected:.1f}%")
    assert ours.expected <= ref.expected + max(0.02, 2 * ref.expected_se) and ours.expected < clean.expected
