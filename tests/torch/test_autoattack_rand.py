"""APGD under EOT (the members of AutoAttack's "rand" version) against torchattacks 3.5.1 on a small randomized
(RNA) model, every example scored by the same rule (R fresh answers, expected accuracy).

CI size: 128 images, 50 iterations, EOT-10. ``RNA_TEST_FULL=1`` runs the published size (200 images, 100
iterations, EOT-20, R = 20). torchattacks' APGD is run through ``attack_single_run`` and its highest-loss point
kept for every example (its ``perturb`` returns the clean image wherever the last single draw was not fooled,
which under randomness throws good points away)."""

import os

import numpy as np
import pytest
import torch

import rna_core
from rna_core import attacks as A
from rna_core.data import load_bundled
from rna_core.evaluation import craft, score_examples

ta = pytest.importorskip("torchattacks")
N, STEPS, EOT, R = (200, 100, 20, 20) if os.environ.get("RNA_TEST_FULL") else (128, 50, 10, 10)


@pytest.fixture(scope="module")
def rna(tmp_path_factory):
    res = rna_core.train("quick", "torch", tmp_path_factory.mktemp("rna"), progress=False, evaluate_at_end=False,
                         arch="small_cnn", width=16, train_samples=4096, batch_size=64, epochs=2, lr=0.02,
                         **{"train_attack.steps": 3})
    clf = res.classifier
    clf.model.set_train(False)
    data = load_bundled("test").subset(N)
    return clf, data.x.astype(np.float32) / 255, data.y


@pytest.fixture(scope="module")
def ours(rna):
    """rna-core's AutoAttack-rand members at this size: {loss: Score}."""
    clf, x, y = rna
    return {spec.name[5:]: score_examples(clf, clf.backend.ops.numpy(craft(clf, x, y, spec, np.random.default_rng(0))),
                                          y, R) for spec in A.autoattack_rand(steps=STEPS, eot=EOT)}


def _reference(clf, x, y, loss: str) -> np.ndarray:
    torch.manual_seed(0)
    attack = ta.APGD(clf.model, norm="Linf", eps=8 / 255, steps=STEPS, n_restarts=1, loss=loss, eot_iter=EOT, seed=0)
    x_best, _, _, _ = attack.attack_single_run(torch.from_numpy(x), torch.from_numpy(y))
    return x_best.detach().numpy()


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_apgd_under_eot_matches_torchattacks(rna, ours, loss):
    clf, x, y = rna
    ref = score_examples(clf, _reference(clf, x, y, loss), y, R)
    clean = score_examples(clf, x, y, R)
    print(f"\nAPGD-{loss.upper()} {STEPS} steps EOT-{EOT}, {N} images, R = {R}: rna-core "
          f"{100 * ours[loss].expected:.1f}%, torchattacks {100 * ref.expected:.1f}% (SE {100 * ref.expected_se:.1f}), "
          f"clean {100 * clean.expected:.1f}%")
    assert abs(ours[loss].expected - ref.expected) <= max(0.02, 2 * ref.expected_se)
    assert ours[loss].expected < clean.expected


def test_autoattack_rand_is_not_weaker_than_torchattacks_autoattack(rna, ours):
    """torchattacks' AutoAttack(version='rand') builds its APGD members with 10 iterations (EOT-20)."""
    clf, x, y = rna
    torch.manual_seed(0)
    ref_adv = ta.AutoAttack(clf.model, norm="Linf", eps=8 / 255, version="rand", n_classes=10, seed=0)(
        torch.from_numpy(x), torch.from_numpy(y)).detach().numpy()
    ref = score_examples(clf, ref_adv, y, R)
    worst = min(s.expected for s in ours.values())
    print(f"\nAutoAttack-rand: rna-core {100 * worst:.1f}% (worst member), torchattacks {100 * ref.expected:.1f}%")
    assert worst <= ref.expected + 2 * ref.expected_se
