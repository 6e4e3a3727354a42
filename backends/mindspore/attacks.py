"""Native MindSpore attacks (formulas in ``rna_core.attacks``), step for step the torch backend's algorithms.

The attacks see the model through an :class:`Oracle`: ``path()`` takes the next draw of the model's randomness
under the controller's policy (RNA path and CTRW noise, as tensors), ``grad(loss, x, y, w, path)`` returns
(per-example loss, logits, d sum(loss) / dx) from one forward on that draw (compiled once per loss in
GRAPH_MODE), and ``logits(x, path)``. Gradients are averaged over ``spec.eot`` forwards, each on a fresh draw.
The loss of every example depends on its own input only (attacks run in eval mode), so the gradient of the
summed loss is every example's own gradient; torch's PGD differentiates the mean instead, a positive per-batch
factor that sign and L2 normalisation remove. Random starts, targets and Square's squares come from the core's
numpy Generator in the same order as on torch, so the two backends attack with the same random numbers.

Losses, ``(logits, y, w) -> per-example loss``: ``ce`` (CE(z, y)), ``dlr`` and ``dlr-t`` (w = target class),
``cw:<kappa>`` (w = per-example constant c, loss c * max(z_y - max_{j!=y} z_j, -kappa)) and ``logits`` (sum_k
w_k z_k, one Jacobian row per one-hot w).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import numpy as np
from mindspore import Tensor, ops

from rna_core.attacks import AttackSpec, apgd_checkpoints, random_targets, square_size


class Oracle(Protocol):
    num_classes: int

    def path(self) -> tuple[Tensor, Tensor]: ...

    def grad(self, loss: str, x: Tensor, y: Tensor, w: Tensor, path: tuple[Tensor, Tensor]
             ) -> tuple[Tensor, Tensor, Tensor]: ...

    def logits(self, x: Tensor, path: tuple[Tensor, Tensor]) -> Tensor: ...


def _onehot(y: Tensor, k: int, like: Tensor) -> Tensor:
    return ops.one_hot(y, k, Tensor(1.0, like.dtype), Tensor(0.0, like.dtype))


def _pick(z: Tensor, idx: Tensor) -> Tensor:
    """z[n, idx[n]] for a (N, K) tensor."""
    return ops.gather_elements(z, 1, idx.reshape(-1, 1)).reshape(-1)


def ce(logits: Tensor, y: Tensor, w: Tensor) -> Tensor:
    return ops.cross_entropy(logits, y, reduction="none")


def dlr(logits: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """-(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3) (Croce & Hein 2020, Eq. 5)."""
    z = ops.sort(logits, axis=1)[0]
    top_is_y = (logits.argmax(1) == y).astype(logits.dtype)
    return -(_pick(logits, y) - z[:, -2] * top_is_y - z[:, -1] * (1 - top_is_y)) / (z[:, -1] - z[:, -3] + 1e-12)


def dlr_targeted(logits: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2), target t = w."""
    z = ops.sort(logits, axis=1)[0]
    return -(_pick(logits, y) - _pick(logits, w)) / (z[:, -1] - 0.5 * (z[:, -3] + z[:, -4]) + 1e-12)


def cw_margin(logits: Tensor, y: Tensor, kappa: float) -> Tensor:
    """max(z_y - max_{j != y} z_j, -kappa), the other maximum taken over (1 - onehot) z as torchattacks does."""
    onehot = _onehot(y, logits.shape[1], logits)
    other = ((1 - onehot) * logits).max(axis=1)
    real = (onehot * logits).max(axis=1)
    return ops.clamp(real - other, min=-kappa)


def weighted_logits(logits: Tensor, y: Tensor, w: Tensor) -> Tensor:
    return (logits * w).sum(axis=1)


def loss_function(name: str) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """The per-example loss called ``name`` (see the module docstring)."""
    if name.startswith("cw:"):
        kappa = float(name[3:])

        def cw_loss(logits: Tensor, y: Tensor, w: Tensor) -> Tensor:
            return w * cw_margin(logits, y, kappa)

        return cw_loss
    table = {"ce": ce, "dlr": dlr, "dlr-t": dlr_targeted, "logits": weighted_logits}
    if name not in table:
        raise ValueError(f"unknown attack loss {name!r}; known: {sorted(table)} and cw:<kappa>")
    return table[name]


def loss_grad(oracle: Oracle, loss: str, x: Tensor, y: Tensor, eot: int, w: Tensor | None = None):
    """(grad_x of the summed loss averaged over ``eot`` forwards, last logits, last per-example loss)."""
    w = y if w is None else w
    total = None
    for _ in range(eot):
        per, logits, g = oracle.grad(loss, x, y, w, oracle.path())
        total = g if total is None else total + g
    return total / eot, logits, per


def _view(x: Tensor) -> tuple[int, ...]:
    return (-1,) + (1,) * (x.ndim - 1)


def _rows(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """a where the per-example ``mask`` holds, else b."""
    return ops.where(mask.reshape(_view(a)).broadcast_to(a.shape), a, b)


def _l2(v: Tensor) -> Tensor:
    return ops.sqrt((v.reshape(v.shape[0], -1) ** 2).sum(axis=1))


def _project(x: Tensor, adv: Tensor, spec: AttackSpec) -> Tensor:
    delta = adv - x
    if spec.norm == "linf":
        delta = ops.clamp(delta, -spec.eps, spec.eps)
    else:
        delta = delta * ops.clamp(spec.eps / _l2(delta), max=1.0).reshape(_view(x))
    return ops.clamp(x + delta, 0, 1)


def _sign_grad(oracle: Oracle, x: Tensor, y: Tensor, spec: AttackSpec, target: Tensor | None) -> Tensor:
    """Gradient of CE(y) (untargeted) or of -CE(target) (targeted)."""
    if target is None:
        return loss_grad(oracle, "ce", x, y, spec.eot)[0]
    return -loss_grad(oracle, "ce", x, target, spec.eot)[0]


def fgsm(oracle: Oracle, x: Tensor, y: Tensor, spec: AttackSpec, target: Tensor | None = None) -> Tensor:
    return ops.clamp(x + spec.eps * ops.sign(_sign_grad(oracle, x, y, spec, target)), 0, 1)


def pgd_from(oracle: Oracle, x: Tensor, y: Tensor, spec: AttackSpec, delta0: Tensor,
             target: Tensor | None = None) -> Tensor:
    adv = ops.clamp(x + delta0, 0, 1)
    for _ in range(spec.steps):
        grad = _sign_grad(oracle, adv, y, spec, target)
        if spec.norm == "linf":
            adv = adv + spec.alpha * ops.sign(grad)
        else:
            adv = adv + spec.alpha * grad / (_l2(grad) + 1e-10).reshape(_view(x))
        adv = _project(x, adv, spec)
    return adv


def mifgsm(oracle: Oracle, x: Tensor, y: Tensor, spec: AttackSpec, target: Tensor | None = None) -> Tensor:
    momentum = ops.zeros_like(x)
    adv = x
    axes = tuple(range(1, x.ndim))
    for _ in range(spec.steps):
        grad = _sign_grad(oracle, adv, y, spec, target)
        momentum = grad / ops.abs(grad).mean(axis=axes, keep_dims=True) + momentum * spec.decay
        adv = _project(x, adv + spec.alpha * ops.sign(momentum), spec.replace(norm="linf"))
    return adv


def _cw_run(oracle: Oracle, x: Tensor, y: Tensor, spec: AttackSpec, c: Tensor) -> tuple[Tensor, Tensor]:
    """One CW-L2 optimisation with per-example constants ``c``: Adam (torch's defaults, betas 0.9/0.999, eps 1e-8)
    on w, adv = (tanh w + 1) / 2 = sigmoid(2 w), gradient by the chain rule (2 (adv - x) + c d margin/d adv)
    2 adv (1 - adv); early stop when the total cost rises at a tenth of the steps. Returns (best adversarial, its
    L2^2 or inf). The sigmoid form is used because MindSpore's CPU tanh is off by up to 1.5e-5 (sigmoid 1.6e-6),
    and Adam's first step, lr sign(g), turns such errors into full steps wherever g is that small."""
    w = ops.atanh(ops.clamp(x * 2 - 1, -1, 1))
    m, v = ops.zeros_like(w), ops.zeros_like(w)
    best, best_l2 = x, ops.full((x.shape[0],), math.inf, dtype=x.dtype)
    prev = math.inf
    loss = f"cw:{spec.kappa!r}"
    for step in range(spec.steps):
        adv = ops.sigmoid(2 * w)
        l2 = ((adv - x) ** 2).reshape(x.shape[0], -1).sum(axis=1)
        grad_adv, logits, per = None, None, 0
        for _ in range(spec.eot):
            f, logits, g = oracle.grad(loss, adv, y, c, oracle.path())
            per = per + f
            grad_adv = g if grad_adv is None else grad_adv + g
        cost = float((l2.sum() + (per / spec.eot).sum()).asnumpy()) if step % max(spec.steps // 10, 1) == 0 else None
        grad = (2 * (adv - x) + grad_adv / spec.eot) * (2 * adv * (1 - adv))
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        k = step + 1
        w = w - spec.lr / (1 - 0.9**k) * m / (ops.sqrt(v) / math.sqrt(1 - 0.999**k) + 1e-8)
        better = (logits.argmax(1) != y) & (l2 < best_l2)
        best_l2 = ops.where(better, l2, best_l2)
        best = _rows(better, adv, best)
        if cost is not None:
            if cost > prev:
                break
            prev = cost
    return best, best_l2


def cw(oracle: Oracle, x: Tensor, y: Tensor, spec: AttackSpec) -> Tensor:
    """CW-L2 with the per-example binary search over c of the torch backend (x10 until the first success,
    then bisection), keeping the smallest successful perturbation."""
    n = x.shape[0]
    c = ops.full((n,), spec.c, dtype=x.dtype)
    inf = ops.full((n,), math.inf, dtype=x.dtype)
    lo, hi = ops.zeros_like(c), inf
    best, best_l2 = x, inf
    for _ in range(spec.search_steps):
        adv, l2 = _cw_run(oracle, x, y, spec, c)
        ok = l2 < math.inf
        take = ok & (l2 < best_l2)
        best = _rows(take, adv, best)
        best_l2 = ops.where(take, l2, best_l2)
        hi = ops.where(ok, ops.minimum(hi, c), hi)
        lo = ops.where(ok, lo, ops.maximum(lo, c))
        c = ops.where(hi < math.inf, (lo + hi) / 2, c * 10)
    return best


def _jacobian(oracle: Oracle, x: Tensor, y: Tensor, eot: int) -> tuple[Tensor, Tensor]:
    """(mean logits (n, K), mean Jacobian (n, K, ...)) over ``eot`` paths; every row of one sample is taken on
    the same path."""
    k = oracle.num_classes
    logits_sum, jac = 0, 0
    for _ in range(eot):
        path = oracle.path()
        rows = []
        for j in range(k):
            w = _onehot(ops.full((x.shape[0],), j, dtype=y.dtype), k, x)
            _, logits, g = oracle.grad("logits", x, y, w, path)
            rows.append(g)
        logits_sum = logits_sum + logits
        jac = jac + ops.stack(rows, axis=1)
    return logits_sum / eot, jac / eot


def _index(mask: Tensor) -> Tensor:
    """Indices (int32) where ``mask`` holds (an empty result is returned uncast: CPU Cast rejects size 0)."""
    idx = ops.nonzero(mask).reshape(-1)
    return idx.astype(np.int32) if idx.shape[0] else idx


def _put(a: Tensor, idx: Tensor, rows: Tensor) -> Tensor:
    """a with a[idx] = rows."""
    return ops.tensor_scatter_update(a, idx.reshape(-1, 1), rows)


def deepfool(oracle: Oracle, x: Tensor, y: Tensor, spec: AttackSpec) -> Tensor:
    """DeepFool (L2) as on torch: an example still classified correctly moves by (1 + overshoot) |f'_l| w'_l /
    ||w'_l||^2 towards the nearest linearised boundary l and is clipped to [0, 1]; it stops once misclassified
    or after ``steps`` steps. Only the examples still active are forwarded."""
    adv = x
    active = ops.ones((x.shape[0],), dtype=x.dtype) > 0
    k = oracle.num_classes
    for _ in range(spec.steps):
        idx = _index(active)
        if idx.shape[0] == 0:
            break
        xi, yi = ops.gather(adv, idx, 0), ops.gather(y, idx, 0)
        logits, jac = _jacobian(oracle, xi, yi, spec.eot)
        fooled = logits.argmax(1) != yi
        active = _put(active, idx, ~fooled)
        keep = _index(~fooled)
        if keep.shape[0] == 0:
            break
        idx, logits, jac, yi = (ops.gather(a, keep, 0) for a in (idx, logits, jac, yi))
        onehot = _onehot(yi, k, logits)
        f_prime = logits - _pick(logits, yi).reshape(-1, 1)
        w0 = (jac * onehot.reshape(*onehot.shape, *[1] * (jac.ndim - 2))).sum(axis=1)
        w_prime = jac - w0.expand_dims(1)
        norms = ops.sqrt((w_prime.reshape(*w_prime.shape[:2], -1) ** 2).sum(axis=2))
        value = ops.where(onehot > 0, ops.full_like(norms, math.inf), ops.abs(f_prime) / norms)
        best = value.argmin(axis=1).astype(np.int32)
        sel = _onehot(best, k, logits)
        wl = (w_prime * sel.reshape(*sel.shape, *[1] * (jac.ndim - 2))).sum(axis=1)
        scale = ops.abs(_pick(f_prime, best)) / _pick(norms, best) ** 2
        step = scale.reshape(_view(wl)) * wl
        cur = ops.gather(adv, idx, 0)
        adv = _put(adv, idx, ops.clamp(cur + (1 + spec.overshoot) * step, 0, 1))
    return adv


def apgd_from(oracle: Oracle, x: Tensor, y: Tensor, spec: AttackSpec, delta0: Tensor, loss: str,
              w: Tensor | None = None) -> Tensor:
    """APGD (Croce & Hein 2020, Alg. 1) as on torch: step 2 eps, momentum 0.75, the step halved (and the iterate
    reset to its best point) at the checkpoints of ``rna_core.attacks.apgd_checkpoints``. Returns the first
    fooling point of each example, else its highest-loss point."""
    def direction(g: Tensor) -> Tensor:
        return ops.sign(g) if spec.norm == "linf" else g / (_l2(g) + 1e-12).reshape(_view(g))

    adv = ops.clamp(x + delta0, 0, 1)
    grad, logits, per = loss_grad(oracle, loss, adv, y, spec.eot, w)
    fooled = logits.argmax(1) != y
    out, x_best, grad_best, loss_best = adv, adv, grad, per
    eta = ops.full((x.shape[0],), 2 * spec.eps, dtype=x.dtype).reshape(_view(x))
    prev = adv
    history = [per]
    checkpoints = set(apgd_checkpoints(spec.steps))
    last_check = 0
    loss_best_last = loss_best
    reduced_last = ops.ones((x.shape[0],), dtype=x.dtype) > 0
    for i in range(spec.steps):
        a = 0.75 if i > 0 else 1.0
        z = _project(x, adv + eta * direction(grad), spec)
        prev, adv = adv, _project(x, adv + a * (z - adv) + (1 - a) * (adv - prev), spec)
        grad, logits, per = loss_grad(oracle, loss, adv, y, spec.eot, w)
        history.append(per)
        new_fool = (logits.argmax(1) != y) & ~fooled
        out = _rows(new_fool, adv, out)
        fooled = fooled | new_fool
        up = per > loss_best
        x_best, grad_best, loss_best = _rows(up, adv, x_best), _rows(up, grad, grad_best), ops.where(up, per, loss_best)
        if i + 1 in checkpoints:
            n_steps = i + 1 - last_check
            raised = sum((history[j + 1] > history[j]).astype(x.dtype) for j in range(last_check, i + 1))
            halve = (raised <= spec.rho * n_steps) | (~reduced_last & (loss_best_last >= loss_best))
            eta = _rows(halve, eta / 2, eta)
            adv, grad = _rows(halve, x_best, adv), _rows(halve, grad_best, grad)
            reduced_last, loss_best_last, last_check = halve, loss_best, i + 1
    return _rows(fooled, out, x_best)


def apgd(oracle: Oracle, x: Tensor, y: Tensor, spec: AttackSpec, rng: np.random.Generator) -> Tensor:
    start = Tensor(spec.random_start_for(x.asnumpy(), rng))
    return apgd_from(oracle, x, y, spec, start, "ce" if spec.name == "apgd-ce" else "dlr")


def apgd_targeted(oracle: Oracle, x: Tensor, y: Tensor, spec: AttackSpec, rng: np.random.Generator) -> Tensor:
    """APGD-T: one run per target, the t-th highest-scoring other class for t = 2 .. n_targets + 1."""
    order = ops.sort(oracle.logits(x, oracle.path()), axis=1)[1].astype(np.int32)
    out = x
    todo = ops.ones((x.shape[0],), dtype=x.dtype) > 0
    for t in range(2, min(spec.n_targets + 2, order.shape[1] + 1)):
        idx = _index(todo)
        if idx.shape[0] == 0:
            break
        target = ops.gather(order[:, -t], idx, 0)
        xi, yi = ops.gather(x, idx, 0), ops.gather(y, idx, 0)
        start = Tensor(spec.random_start_for(xi.asnumpy(), rng))
        adv = apgd_from(oracle, xi, yi, spec, start, "dlr-t", target)
        fooled = oracle.logits(adv, oracle.path()).argmax(1) != yi
        out = _put(out, idx, adv)
        todo = _put(todo, idx, ~fooled)
    return out


def margin(logits: Tensor, y: Tensor) -> Tensor:
    """z_y - max_{j != y} z_j: negative once the example is misclassified."""
    onehot = _onehot(y, logits.shape[1], logits) > 0
    other = ops.where(onehot, ops.full_like(logits, -math.inf), logits).max(axis=1)
    return _pick(logits, y) - other


def square(oracle: Oracle, x: Tensor, y: Tensor, spec: AttackSpec, rng: np.random.Generator) -> Tensor:
    """Square attack, L-inf, drawing the same random numbers in the same order as the torch backend."""
    n, c, h, w = x.shape
    eps = spec.eps
    stripes = rng.choice([-eps, eps], size=(n, c, 1, w)).astype(np.float32)
    best = ops.clamp(x + Tensor(stripes), 0, 1)
    best_margin = margin(oracle.logits(best, oracle.path()), y)
    for it in range(spec.steps):
        idx = _index(best_margin > 0)
        if idx.shape[0] == 0:
            break
        s = min(square_size(spec.p_init, it, spec.steps, h * w, 1), h, w)
        vh, vw = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        window = np.zeros((1, 1, h, w), bool)
        window[..., vh:vh + s, vw:vw + s] = True
        xi, cur = ops.gather(x, idx, 0), ops.gather(best, idx, 0)
        signs = Tensor(rng.choice([-eps, eps], size=(idx.shape[0], c, 1, 1)).astype(np.float32))
        delta = ops.where(Tensor(window).broadcast_to(xi.shape), signs.broadcast_to(xi.shape), cur - xi)
        cand = ops.clamp(xi + ops.clamp(delta, -eps, eps), 0, 1)
        m = margin(oracle.logits(cand, oracle.path()), ops.gather(y, idx, 0))
        better = m < ops.gather(best_margin, idx, 0)
        best = _put(best, idx, _rows(better, cand, cur))
        best_margin = _put(best_margin, idx, ops.where(better, m, ops.gather(best_margin, idx, 0)))
    return best


def run(oracle: Oracle, x: Tensor, y: Tensor, spec: AttackSpec, rng: np.random.Generator) -> Tensor:
    """Dispatch ``spec`` to its implementation; random starts and targets come from ``rng``."""
    target = Tensor(random_targets(y.asnumpy(), oracle.num_classes, rng).astype(np.int32)) if spec.targeted else None
    if spec.name == "fgsm":
        return fgsm(oracle, x, y, spec, target)
    if spec.name == "pgd":
        return pgd_from(oracle, x, y, spec, Tensor(spec.random_start_for(x.asnumpy(), rng)), target)
    if spec.name == "mifgsm":
        return mifgsm(oracle, x, y, spec, target)
    if spec.name == "cw":
        return cw(oracle, x, y, spec)
    if spec.name == "deepfool":
        return deepfool(oracle, x, y, spec)
    if spec.name in ("apgd-ce", "apgd-dlr"):
        return apgd(oracle, x, y, spec, rng)
    if spec.name == "apgd-t":
        return apgd_targeted(oracle, x, y, spec, rng)
    return square(oracle, x, y, spec, rng)
