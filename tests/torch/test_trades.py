"""TRADES held to the authors' formula written out in plain torch (their ``trades_loss``: x' = x + 0.001 N(0, 1),
K sign steps on KL(softmax f(x) || softmax f(x')) with f(x) detached, projection, then CE(f(x), y) + beta / N
KL_sum(...) through both forwards, one SGD step): two steps of ``method="trades"`` give the same weights and running
statistics, on a deterministic model and on an RNA model whose draws the test replays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rna_core.attacks import pgd
from rna_core.backend import SGDConfig
from rna_core.classifier import build_classifier
from rna_core.methods import take_step
from rna_core.recipes import get_recipe

RECIPE = get_recipe("quick", method="trades", trades_beta=6.0, train_attack=pgd(3, 8 / 255, 2 / 255))


def _clf(norms: str):
    return build_classifier({"name": "small_cnn", "num_classes": 10, "in_channels": 1, "width": 4}, norms, True,
                            "torch", np.random.default_rng(0), 0)


def _authors_step(model, draws, x, y, noise, opt, beta=6.0, eps=8 / 255, alpha=2 / 255, steps=3):
    """One TRADES step as the authors wrote it; ``draws``: the attack's and the update's."""
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    model.train()  # rna-core's default: attack_in_train_mode
    with torch.no_grad():
        clean = model(x, draws[0])
    adv = x + torch.from_numpy(noise)
    for _ in range(steps):
        adv.requires_grad_(True)
        loss_kl = F.kl_div(F.log_softmax(model(adv, draws[0]), 1), F.softmax(clean, 1), reduction="sum")
        (g,) = torch.autograd.grad(loss_kl, adv)
        adv = torch.min(torch.max(adv.detach() + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)
    opt.zero_grad(set_to_none=True)
    logits = model(x, draws[1])
    robust = F.kl_div(F.log_softmax(model(adv, draws[1]), 1), F.softmax(logits, 1), reduction="sum") / len(x)
    (F.cross_entropy(logits, y) + beta * robust).backward()
    model.drop_unselected_grads()
    opt.step()


@pytest.mark.parametrize("norms", ["bn", "bn+in"])
def test_a_trades_step_is_the_authors_formula(norms):
    ours, theirs = _clf(norms), _clf(norms)
    rng = np.random.default_rng(1)
    opt_ours = ours.backend.make_optimizer(ours.model, SGDConfig(0.1, 0.9, 5e-4))
    opt_theirs = torch.optim.SGD(theirs.model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    seen = []
    for t in range(2):
        x = rng.random((8, 1, 12, 12), dtype=np.float32)
        y = rng.integers(0, 10, 8)
        seen.clear()
        with ours.controller.observe(seen.append):
            take_step(ours, opt_ours, "trades", x, y, RECIPE, np.random.default_rng(t), 0.1)
        noise = (0.001 * np.random.default_rng(t).standard_normal(x.shape)).astype(np.float32)
        assert len(seen) == 1 + 3 + 1 and all(d is seen[0] for d in seen[:4]), "the attack holds one draw"
        _authors_step(theirs.model, (seen[0], seen[-1]), x, y, noise, opt_theirs)
    a, b = ours.backend.get_state(ours.model), theirs.backend.get_state(theirs.model)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
