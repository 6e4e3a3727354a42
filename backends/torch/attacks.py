"""Native PyTorch attacks (formulas in ``rna_core.attacks``).

Every random number comes from the core's numpy Generator; the attack never changes the model's
train/eval mode or path policy (the caller sets both). Each gradient is averaged over ``spec.eot``
forwards, each of which draws the model's randomness under the controller's current policy.
The ``*_from`` functions take their random start explicitly, so tests can feed the start another
implementation drew.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rna_core.attacks import AttackSpec, apgd_checkpoints, random_targets, square_size

Loss = Callable[[torch.Tensor], torch.Tensor]  # logits -> per-example loss


def loss_grad(model: nn.Module, x: torch.Tensor, loss: Loss, eot: int = 1, reduce: str = "mean"):
    """(grad_x of the reduced loss averaged over ``eot`` forwards, last logits, last per-example loss)."""
    x = x.detach().requires_grad_(True)
    total = torch.zeros_like(x)
    for _ in range(eot):
        logits = model(x)
        per = loss(logits)
        total += torch.autograd.grad(per.mean() if reduce == "mean" else per.sum(), x)[0]
    return total / eot, logits.detach(), per.detach()


def _ce(y: torch.Tensor, targeted: torch.Tensor | None = None) -> Loss:
    if targeted is not None:
        return lambda z: -F.cross_entropy(z, targeted, reduction="none")
    return lambda z: F.cross_entropy(z, y, reduction="none")


def _per_example(v: torch.Tensor) -> torch.Tensor:
    return v.view(len(v), *[1] * (v.ndim - 1)) if v.ndim == 1 else v


def _l2(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).norm(p=2, dim=1)


def _project(x: torch.Tensor, adv: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    delta = adv - x
    if spec.norm == "linf":
        delta = torch.clamp(delta, -spec.eps, spec.eps)
    else:
        factor = torch.clamp(spec.eps / _l2(delta), max=1.0)
        delta = delta * _per_example(factor).view(-1, *[1] * (x.ndim - 1))
    return torch.clamp(x + delta, 0, 1).detach()


def fgsm(model, x, y, spec: AttackSpec, target=None) -> torch.Tensor:
    """x + eps sign(grad CE), clipped to [0, 1] (torchattacks.FGSM)."""
    grad, _, _ = loss_grad(model, x, _ce(y, target), spec.eot)
    return torch.clamp(x + spec.eps * grad.sign(), 0, 1).detach()


def pgd_from(model, x, y, spec: AttackSpec, delta0: torch.Tensor, target=None) -> torch.Tensor:
    """PGD from x + delta0: L-inf steps alpha sign(g) (torchattacks.PGD); L2 steps alpha g / ||g||_2 and
    projects onto the eps-ball (torchattacks.PGDL2)."""
    adv = torch.clamp(x + delta0, 0, 1).detach()
    for _ in range(spec.steps):
        grad, _, _ = loss_grad(model, adv, _ce(y, target), spec.eot)
        if spec.norm == "linf":
            adv = adv + spec.alpha * grad.sign()
        else:
            grad = grad / (_l2(grad) + 1e-10).view(-1, *[1] * (x.ndim - 1))
            adv = adv + spec.alpha * grad
        adv = _project(x, adv, spec)
    return adv


def mifgsm(model, x, y, spec: AttackSpec, target=None) -> torch.Tensor:
    """Momentum iterative FGSM: g <- decay g + grad / mean|grad| (torchattacks.MIFGSM)."""
    momentum = torch.zeros_like(x)
    adv = x.clone().detach()
    for _ in range(spec.steps):
        grad, _, _ = loss_grad(model, adv, _ce(y, target), spec.eot)
        grad = grad / torch.mean(torch.abs(grad), dim=tuple(range(1, x.ndim)), keepdim=True)
        momentum = grad + momentum * spec.decay
        adv = _project(x, adv + spec.alpha * momentum.sign(), spec.replace(norm="linf"))
    return adv


def _cw_margin(logits: torch.Tensor, y: torch.Tensor, kappa: float) -> torch.Tensor:
    onehot = F.one_hot(y, logits.shape[1]).to(logits.dtype)
    other = torch.max((1 - onehot) * logits, dim=1)[0]
    real = torch.max(onehot * logits, dim=1)[0]
    return torch.clamp(real - other, min=-kappa)


def _cw_run(model, x, y, spec: AttackSpec, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One CW-L2 optimisation with per-example constants ``c`` (torchattacks.CW's loop, including its early
    stop when the total cost rises at a tenth of the steps). Returns (best adversarial, its L2^2 or inf)."""
    w = torch.atanh(torch.clamp(x * 2 - 1, -1, 1)).detach().requires_grad_(True)
    best = x.clone().detach()
    best_l2 = torch.full((len(x),), math.inf, device=x.device)
    prev = math.inf
    opt = torch.optim.Adam([w], lr=spec.lr)
    for step in range(spec.steps):
        adv = (torch.tanh(w) + 1) / 2
        l2 = ((adv - x) ** 2).flatten(1).sum(1)
        f_total = torch.zeros_like(l2)
        for _ in range(spec.eot):
            logits = model(adv)
            f_total = f_total + _cw_margin(logits, y, spec.kappa)
        cost = l2.sum() + (c * f_total / spec.eot).sum()
        opt.zero_grad()
        cost.backward()
        opt.step()
        fooled = logits.detach().argmax(1) != y
        better = fooled & (l2.detach() < best_l2)
        best_l2 = torch.where(better, l2.detach(), best_l2)
        best = torch.where(better.view(-1, *[1] * (x.ndim - 1)), adv.detach(), best)
        if step % max(spec.steps // 10, 1) == 0:
            if cost.item() > prev:
                break
            prev = cost.item()
    return best, best_l2


def cw(model, x, y, spec: AttackSpec) -> torch.Tensor:
    """CW-L2; with ``search_steps`` > 1, a per-example binary search over c (x10 until the first success,
    then bisection), keeping the smallest successful perturbation."""
    c = torch.full((len(x),), spec.c, device=x.device)
    lo, hi = torch.zeros_like(c), torch.full_like(c, math.inf)
    best, best_l2 = x.clone().detach(), torch.full_like(c, math.inf)
    for _ in range(spec.search_steps):
        adv, l2 = _cw_run(model, x, y, spec, c)
        ok = l2 < math.inf
        take = ok & (l2 < best_l2)
        best = torch.where(take.view(-1, *[1] * (x.ndim - 1)), adv, best)
        best_l2 = torch.where(take, l2, best_l2)
        hi = torch.where(ok, torch.minimum(hi, c), hi)
        lo = torch.where(ok, lo, torch.maximum(lo, c))
        c = torch.where(hi < math.inf, (lo + hi) / 2, c * 10)
    return best


def _jacobian(model, x: torch.Tensor, eot: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean logits, mean d logits / dx of shape (K, N, ...)) over ``eot`` forwards; examples are independent
    in eval mode, so the gradient of sum_n logits[n, k] is the per-example Jacobian row k."""
    x = x.detach().requires_grad_(True)
    logits_sum, jac = 0.0, 0.0
    for _ in range(eot):
        logits = model(x)
        rows = [torch.autograd.grad(logits[:, k].sum(), x, retain_graph=k + 1 < logits.shape[1])[0]
                for k in range(logits.shape[1])]
        logits_sum = logits_sum + logits.detach()
        jac = jac + torch.stack(rows)
    return logits_sum / eot, jac / eot


def deepfool(model, x, y, spec: AttackSpec) -> torch.Tensor:
    """DeepFool (L2), batched but step for step as torchattacks.DeepFool: an example still classified correctly
    moves by (1 + overshoot) |f'_l| w'_l / ||w'_l||^2 towards the nearest linearised boundary l, then is
    clipped to [0, 1]; it stops once misclassified or after ``steps`` steps."""
    adv = x.clone().detach()
    active = torch.ones(len(x), dtype=torch.bool, device=x.device)
    for _ in range(spec.steps):
        idx = active.nonzero().flatten()
        if len(idx) == 0:
            break
        logits, jac = _jacobian(model, adv[idx], spec.eot)
        yi = y[idx]
        fooled = logits.argmax(1) != yi
        active[idx[fooled]] = False
        keep = ~fooled
        if not keep.any():
            break
        idx, logits, jac, yi = idx[keep], logits[keep], jac[:, keep], yi[keep]
        n = len(idx)
        f0 = logits[torch.arange(n), yi]
        w0 = jac[yi, torch.arange(n)]
        f_prime = logits - f0[:, None]                       # (n, K)
        w_prime = jac.transpose(0, 1) - w0[:, None]          # (n, K, ...)
        norms = w_prime.flatten(2).norm(p=2, dim=2)          # (n, K)
        value = f_prime.abs() / norms
        value[torch.arange(n), yi] = math.inf
        best = value.argmin(1)
        wl = w_prime[torch.arange(n), best]
        delta = (f_prime[torch.arange(n), best].abs() / norms[torch.arange(n), best] ** 2).view(
            -1, *[1] * (x.ndim - 1)) * wl
        adv[idx] = torch.clamp(adv[idx] + (1 + spec.overshoot) * delta, 0, 1).detach()
    return adv


def dlr(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """DLR loss: -(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3) (Croce & Hein 2020, Eq. 5)."""
    z, _ = logits.sort(dim=1)
    top_is_y = (logits.argmax(1) == y).to(logits.dtype)
    zy = logits.gather(1, y[:, None])[:, 0]
    return -(zy - z[:, -2] * top_is_y - z[:, -1] * (1 - top_is_y)) / (z[:, -1] - z[:, -3] + 1e-12)


def dlr_targeted(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted DLR: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)."""
    z, _ = logits.sort(dim=1)
    zy = logits.gather(1, y[:, None])[:, 0]
    zt = logits.gather(1, target[:, None])[:, 0]
    return -(zy - zt) / (z[:, -1] - 0.5 * (z[:, -3] + z[:, -4]) + 1e-12)


def apgd_from(model, x, y, spec: AttackSpec, delta0: torch.Tensor, loss: Loss) -> torch.Tensor:
    """APGD (Croce & Hein 2020, Alg. 1): step eta = 2 eps, momentum 0.75; at each checkpoint the step of an
    example is halved, and its iterate reset to its best point, if at most rho of the steps since the last
    checkpoint raised its loss, or if its step was not halved last time and its best loss did not improve.
    Returns, per example, the first point that fooled the model, else the highest-loss point."""
    view = (-1, *[1] * (x.ndim - 1))

    def direction(g: torch.Tensor) -> torch.Tensor:
        return g.sign() if spec.norm == "linf" else g / (_l2(g) + 1e-12).view(view)

    adv = torch.clamp(x + delta0, 0, 1)
    grad, logits, per = loss_grad(model, adv, loss, spec.eot, reduce="sum")
    fooled = logits.argmax(1) != y
    out = adv.clone()
    x_best, grad_best, loss_best = adv.clone(), grad.clone(), per.clone()
    eta = torch.full((len(x), *[1] * (x.ndim - 1)), 2 * spec.eps, device=x.device)
    prev = adv.clone()
    history = [per]
    checkpoints = set(apgd_checkpoints(spec.steps))
    last_check = 0
    loss_best_last = loss_best.clone()
    reduced_last = torch.ones(len(x), dtype=torch.bool, device=x.device)
    for i in range(spec.steps):
        with torch.no_grad():
            a = 0.75 if i > 0 else 1.0
            z = _project(x, adv + eta * direction(grad), spec)
            prev, adv = adv, _project(x, adv + a * (z - adv) + (1 - a) * (adv - prev), spec)
        grad, logits, per = loss_grad(model, adv, loss, spec.eot, reduce="sum")
        history.append(per)
        new_fool = (logits.argmax(1) != y) & ~fooled
        out[new_fool] = adv[new_fool]
        fooled |= new_fool
        up = per > loss_best
        x_best[up], grad_best[up], loss_best[up] = adv[up], grad[up], per[up]
        if i + 1 in checkpoints:
            k = i + 1 - last_check
            raised = sum((history[m + 1] > history[m]).float() for m in range(last_check, i + 1))
            halve = (raised <= spec.rho * k) | (~reduced_last & (loss_best_last >= loss_best))
            eta[halve] /= 2
            adv[halve], grad[halve] = x_best[halve], grad_best[halve]
            reduced_last, loss_best_last, last_check = halve, loss_best.clone(), i + 1
    out[~fooled] = x_best[~fooled]
    return out.detach()


def apgd(model, x, y, spec: AttackSpec, rng: np.random.Generator) -> torch.Tensor:
    loss = (lambda z: F.cross_entropy(z, y, reduction="none")) if spec.name == "apgd-ce" else (lambda z: dlr(z, y))
    return apgd_from(model, x, y, spec, _tensor_like(spec.random_start_for(_np(x), rng), x), loss)


def apgd_targeted(model, x, y, spec: AttackSpec, rng: np.random.Generator) -> torch.Tensor:
    """APGD-T: one run per target, the t-th highest-scoring other class for t = 2 .. n_targets + 1 (AutoAttack)."""
    with torch.no_grad():
        order = model(x).argsort(dim=1)
    out = x.clone()
    todo = torch.ones(len(x), dtype=torch.bool, device=x.device)
    for t in range(2, min(spec.n_targets + 2, order.shape[1] + 1)):
        idx = todo.nonzero().flatten()
        if len(idx) == 0:
            break
        target = order[idx, -t]
        xi, yi = x[idx], y[idx]
        adv = apgd_from(model, xi, yi, spec, _tensor_like(spec.random_start_for(_np(xi), rng), xi),
                        lambda z, yi=yi, target=target: dlr_targeted(z, yi, target))
        with torch.no_grad():
            fooled = model(adv).argmax(1) != yi
        out[idx] = adv
        todo[idx[fooled]] = False
    return out


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_y - max_{j != y} z_j: negative once the example is misclassified."""
    other = logits.clone()
    other[torch.arange(len(y)), y] = -math.inf
    return logits.gather(1, y[:, None])[:, 0] - other.max(1)[0]


@torch.no_grad()
def square(model, x, y, spec: AttackSpec, rng: np.random.Generator) -> torch.Tensor:
    """Square attack, L-inf (Andriushchenko et al. 2020): vertical-stripe init, then per query one random
    square of side s(it) whose every channel is set to +-eps; a change is kept where it lowers the margin."""
    n, c, h, w = x.shape
    eps = spec.eps
    stripes = rng.choice([-eps, eps], size=(n, c, 1, w)).astype(np.float32)
    best = torch.clamp(x + _tensor_like(stripes, x), 0, 1)
    best_margin = margin(model(best), y)
    for it in range(spec.steps):
        idx = (best_margin > 0).nonzero().flatten()
        if len(idx) == 0:
            break
        s = min(square_size(spec.p_init, it, spec.steps, h * w, 1), h, w)
        vh, vw = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        xi, cur = x[idx], best[idx]
        delta = cur - xi
        signs = _tensor_like(rng.choice([-eps, eps], size=(len(idx), c, 1, 1)).astype(np.float32), x)
        delta[:, :, vh:vh + s, vw:vw + s] = signs
        cand = torch.clamp(xi + torch.clamp(delta, -eps, eps), 0, 1)
        m = margin(model(cand), y[idx])
        better = m < best_margin[idx]
        best[idx[better]] = cand[better]
        best_margin[idx[better]] = m[better]
    return best


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _tensor_like(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(like.device, like.dtype)


def run(model, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, rng: np.random.Generator) -> torch.Tensor:
    """Dispatch ``spec`` to its implementation; random starts and targets come from ``rng``."""
    target = _tensor_like(random_targets(_np(y), model.graph.num_classes, rng), y) if spec.targeted else None
    if spec.name == "fgsm":
        return fgsm(model, x, y, spec, target)
    if spec.name == "pgd":
        return pgd_from(model, x, y, spec, _tensor_like(spec.random_start_for(_np(x), rng), x), target)
    if spec.name == "mifgsm":
        return mifgsm(model, x, y, spec, target)
    if spec.name == "cw":
        return cw(model, x, y, spec)
    if spec.name == "deepfool":
        return deepfool(model, x, y, spec)
    if spec.name in ("apgd-ce", "apgd-dlr"):
        return apgd(model, x, y, spec, rng)
    if spec.name == "apgd-t":
        return apgd_targeted(model, x, y, spec, rng)
    return square(model, x, y, spec, rng)
