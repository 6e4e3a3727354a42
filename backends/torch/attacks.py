"""Native PyTorch attacks. Random starts arrive from the core (numpy), so runs are reproducible and
identical across backends; the attack never changes the model's train/eval mode (the caller sets it)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rna_core.attacks import AttackSpec


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eot: int = 1) -> torch.Tensor:
    """grad_x of mean cross-entropy, averaged over ``eot`` forwards (each forward draws the model's
    randomness according to its controller's policy: a fresh path per forward under ``resample``)."""
    x = x.detach().requires_grad_(True)
    total = torch.zeros_like(x)
    for _ in range(eot):
        loss = F.cross_entropy(model(x), y)
        total += torch.autograd.grad(loss, x)[0]
    return total / eot


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, delta0: torch.Tensor) -> torch.Tensor:
    """L-inf PGD as torchattacks.PGD: x_{t+1} = clip_[0,1](x + clip_eps(x_t + alpha sign(g) - x))."""
    if spec.norm != "linf":
        raise NotImplementedError("the torch backend's PGD supports norm='linf' only in this version")
    adv = torch.clamp(x + delta0, 0, 1).detach()
    for _ in range(spec.steps):
        grad = input_gradient(model, adv, y, spec.eot)
        adv = adv.detach() + spec.alpha * grad.sign()
        delta = torch.clamp(adv - x, -spec.eps, spec.eps)
        adv = torch.clamp(x + delta, 0, 1).detach()
    return adv


ATTACKS = {"pgd": pgd}
