"""Every attack on torch and MindSpore: the losses behind them agree to float32 tolerance in both MindSpore modes,
and whole attacks agree on robust accuracy and perturbation size (GRAPH_MODE, one fixed path, same random numbers)."""

import numpy as np
import pytest

from rna_core.apps.parity import compare_attacks, examples, pair
from rna_core.attacks import CE, CE_MEAN, DLR, DLR_TARGETED, LOGITS, Loss, Oracle
from rna_core.losses import KL
from rna_core.registry import get_backend

LOSSES = [CE, CE_MEAN, KL, DLR, DLR_TARGETED, Loss("cw"), Loss("cw", 0.5), LOGITS]


@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_attack_losses_and_gradients_agree(mode):
    ca, cb = pair("torch", get_backend("mindspore", mode=mode), "bn+in", "small_cnn", 8, 0)
    rng = np.random.default_rng(0)
    x = rng.random((6, 3, 16, 16), dtype=np.float32)
    y = rng.integers(0, 10, 6)
    target = (y + rng.integers(1, 10, 6)) % 10
    weights = {"ce": y, "dlr": y, "dlr-t": target, "logits": rng.standard_normal((6, 10)).astype(np.float32),
               "kl": rng.standard_normal((6, 10)).astype(np.float32)}
    with ca.controller.fixed(ca.controller.draw()) as path, cb.controller.fixed(path):
        for c in (ca, cb):
            c.model.set_train(False)
        for loss in LOSSES:
            w = weights.get(loss.name, rng.uniform(0.5, 2, 6).astype(np.float32))
            got = []
            for c in (ca, cb):
                oracle, be = Oracle(c.backend, c.model), c.backend
                ops = be.ops
                per, _, grad = oracle.loss_grad(loss, ops.tensor(x), ops.tensor(y), ops.tensor(w), oracle.draw())
                got.append((be.ops.numpy(per), be.ops.numpy(grad)))
            for what, a, b in (("loss", got[0][0], got[1][0]), ("gradient", got[0][1], got[1][1])):
                rel = np.abs(a - b).max() / np.abs(a).max()
                assert rel < 1e-4, f"{loss} {what}: relative difference {rel:.1e}"


def test_attacks_agree_graph_mode():
    diffs = compare_attacks("torch", get_backend("mindspore", mode="graph"), batch=16)
    assert set(diffs) == set(examples())
    for label, d in diffs.items():
        print(f"\n{label:10s} " + "  ".join(f"{k}={v:.1e}" for k, v in d.items()), end="")
    bad = {k: d for k, d in diffs.items() if d["accuracy"] > 1 / 16 or d["l2"] > 1e-2}
    assert not bad, f"attacks disagree beyond one example / 1 % of the perturbation: {bad}"
    assert diffs["square"]["pixels"] == 0, "Square uses no gradient: its queries must agree exactly"
    assert diffs["deepfool"]["pixels"] < 1e-3


@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_autoattack_rand_agrees_under_fresh_draws(mode):
    """AutoAttack-rand's members (APGD-CE/DLR, every gradient averaged over fresh draws) on both backends: the
    controllers draw the same paths in the same order, so the adversarial examples agree."""
    from rna_core.attacks import autoattack_rand
    from rna_core.evaluation import craft

    ca, cb = pair("torch", get_backend("mindspore", mode=mode), "bn+in", "small_cnn", 8, 0)
    x = np.random.default_rng(3).random((16, 3, 16, 16), dtype=np.float32)
    y = np.random.default_rng(4).integers(0, 10, 16)
    for c in (ca, cb):
        c.model.set_train(False)
    for spec in autoattack_rand(1 / 255, steps=5, eot=2):
        adv = [c.backend.ops.numpy(craft(c, x, y, spec, np.random.default_rng(1))) for c in (ca, cb)]
        l2 = [np.linalg.norm((a - x).reshape(16, -1), axis=1) for a in adv]
        pixels = float((np.abs(adv[0] - adv[1]) > 1e-4).mean())
        print(f"\n{mode} {spec.label}: pixels differing {pixels:.1e}, mean L2 {l2[0].mean():.4f} / {l2[1].mean():.4f}")
        assert pixels < 1e-2 and abs(l2[0].mean() - l2[1].mean()) < 1e-2 * l2[0].mean()
