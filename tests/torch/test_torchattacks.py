"""Cross-checks of the native torch attacks against torchattacks 3.5.1 (test-only dependency).

On a deterministic model (a BN network in eval mode, trained briefly on the bundled data) with identical
random starts, FGSM, PGD (L-inf and L2) and MIFGSM give the same adversarial examples; CW, DeepFool and
APGD agree on robust accuracy within 1 percentage point, parameters translated explicitly.
"""

import numpy as np
import pytest
import torch

import rna_core
from rna_core import attacks as A
from rna_core.attacks import Oracle
from rna_core.attacks.loops import cw, deepfool, pgd
from rna_core.data import load_bundled

ta = pytest.importorskip("torchattacks")
N = 200
SMALL = 40  # CW and DeepFool: torchattacks runs DeepFool one image at a time


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    res = rna_core.train("quick", "torch", tmp_path_factory.mktemp("run"), progress=False, evaluate_at_end=False,
                         norms="bn", method="clean", epochs=3, train_samples=3000, width=8,
                         schedule="constant", crop_padding=0)
    clf = res.classifier
    clf.model.set_train(False)
    data = load_bundled("test").subset(N)
    x = torch.from_numpy(data.x.astype(np.float32) / 255)
    y = torch.from_numpy(data.y)
    with torch.no_grad():
        acc = (clf.model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.5, f"the reference model is too weak to compare attacks on ({acc:.2f})"
    return clf.model, Oracle(clf.backend, clf.model), x, y


def _acc(model, adv, y) -> float:
    with torch.no_grad():
        return (model(adv).argmax(1) == y).float().mean().item()


def test_fgsm_identical(setup):
    model, oracle, x, y = setup
    ours = pgd.fgsm_from(oracle, x, y, A.fgsm(8 / 255))
    ref = ta.FGSM(model, eps=8 / 255)(x, y)
    assert (ours - ref).abs().max().item() <= 1e-6


def test_pgd_linf_identical(setup):
    model, oracle, x, y = setup
    spec = A.pgd(10, 8 / 255, 2 / 255)
    torch.manual_seed(11)
    ref = ta.PGD(model, eps=spec.eps, alpha=spec.alpha, steps=spec.steps, random_start=True)(x, y)
    torch.manual_seed(11)
    delta0 = torch.empty_like(x).uniform_(-spec.eps, spec.eps)
    ours = pgd.pgd_from(oracle, x, y, spec, delta0)
    assert (ours - ref).abs().max().item() <= 1e-6


def test_pgd_l2_identical(setup):
    model, oracle, x, y = setup
    spec = A.pgd(10, 0.5, 0.1, norm="l2")
    torch.manual_seed(12)
    ref = ta.PGDL2(model, eps=spec.eps, alpha=spec.alpha, steps=spec.steps, random_start=True)(x, y)
    torch.manual_seed(12)
    delta = torch.empty_like(x).normal_()
    n = delta.view(len(x), -1).norm(p=2, dim=1).view(-1, 1, 1, 1)
    r = torch.zeros_like(n).uniform_(0, 1)
    delta *= r / n * spec.eps  # torchattacks' operation order: the start agrees to the bit
    ours = pgd.pgd_from(oracle, x, y, spec, delta)
    assert (ours - ref).abs().max().item() <= 1e-6


def test_mifgsm_identical(setup):
    model, oracle, x, y = setup
    spec = A.mifgsm(5, 8 / 255, 2 / 255, 1.0)
    ref = ta.MIFGSM(model, eps=spec.eps, alpha=spec.alpha, steps=spec.steps, decay=spec.decay)(x, y)
    ours = pgd.mifgsm_from(oracle, x, y, spec)
    assert (ours - ref).abs().max().item() <= 1e-6


def test_cw_robust_accuracy_and_distortion(setup):
    model, oracle, x, y = setup
    x, y = x[:SMALL], y[:SMALL]
    spec = A.cw(steps=50, c=1.0, kappa=0.0, lr=0.01)
    ref = ta.CW(model, c=spec.c, kappa=spec.kappa, steps=spec.steps, lr=spec.lr)(x, y)
    ours = cw.run_cw(oracle, x, y, spec)
    assert abs(_acc(model, ours, y) - _acc(model, ref, y)) <= 0.01
    assert _acc(model, ours, y) < _acc(model, x, y)


def test_deepfool_distortion_and_robust_accuracy(setup):
    """DeepFool stops just past the linearised boundary, so whether its output is misclassified flips under
    1e-7 changes of the logits (torchattacks runs one image at a time, we run batches, and conv numerics
    depend on the batch). The perturbations are therefore compared example by example, and robust accuracy
    at an L2 budget is read from them: an example clean-correct under both is broken iff 0 < L2 <= budget."""
    model, oracle, x, y = setup
    x, y = x[:SMALL], y[:SMALL]
    spec = A.deepfool(steps=50, overshoot=0.02)
    ref = ta.DeepFool(model, steps=spec.steps, overshoot=spec.overshoot)(x, y)
    ours = deepfool.run_deepfool(oracle, x, y, spec)
    d_ours, d_ref = ((ours - x).flatten(1).norm(dim=1), (ref - x).flatten(1).norm(dim=1))
    torch.testing.assert_close(d_ours, d_ref, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    for budget in (0.25, 0.5, 1.0):
        acc_ours = (correct & ~((d_ours > 0) & (d_ours <= budget))).float().mean().item()
        acc_ref = (correct & ~((d_ref > 0) & (d_ref <= budget))).float().mean().item()
        assert abs(acc_ours - acc_ref) <= 0.01


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_apgd_robust_accuracy(setup, loss):
    model, oracle, x, y = setup
    spec = A.apgd(loss, steps=20, eps=4 / 255)
    torch.manual_seed(0)
    ref = ta.APGD(model, norm="Linf", eps=spec.eps, steps=spec.steps, n_restarts=1, loss=loss, seed=0)(x, y)
    ours = A.run(oracle, x, y, spec, np.random.default_rng(0))
    assert abs(_acc(model, ours, y) - _acc(model, ref, y)) <= 0.01
    assert (ours - x).abs().max().item() <= spec.eps + 1e-6


def test_apgd_t_robust_accuracy(setup):
    model, oracle, x, y = setup
    spec = A.apgd_t(steps=20, eps=4 / 255, n_targets=3)
    ref = ta.APGDT(model, norm="Linf", eps=spec.eps, steps=spec.steps, n_restarts=1, n_classes=10, seed=0)
    ref.n_target_classes = spec.n_targets
    ours = A.run(oracle, x, y, spec, np.random.default_rng(0))
    assert abs(_acc(model, ours, y) - _acc(model, ref(x, y), y)) <= 0.01


def test_square_is_weaker_than_pgd_but_works(setup):
    model, oracle, x, y = setup
    ours = A.run(oracle, x, y, A.square(300, 8 / 255), np.random.default_rng(0))
    assert (ours - x).abs().max().item() <= 8 / 255 + 1e-6
    clean, sq = _acc(model, x, y), _acc(model, ours, y)
    by_pgd = _acc(model, A.run(oracle, x, y, A.pgd(20), np.random.default_rng(0)), y)
    assert sq < clean and by_pgd <= sq + 0.02
