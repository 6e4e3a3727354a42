"""Normalization layers and the RNA slot for PyTorch (NCHW).

Formulas (x: (N, C, H, W), eps = 1e-5, momentum m = 0.1 as torch's BatchNorm2d):
- BN: per channel c, mu_c, var_c over (N, H, W); train: y = (x - mu) / sqrt(var + eps) with the biased
  var, running <- (1 - m) running + m * stat with the unbiased var; eval: running statistics.
- BGN (G groups, "batch-group norm"): one mu_g, var_g per group over (N, C/G, H, W); the same rules as
  BN with n = N * C/G * H * W in the unbiased factor n / (n - 1). (The authors' GroupBatchNorm2d differs in
  three ways, all bugs: it normalizes training outputs with the unbiased variance, it inverts the momentum,
  running <- m running + (1 - m) stat, and it applies Bessel's correction twice, N / (N - 1) times the unbiased
  variance.)
- GN (G groups; IN = GN with C groups, LN = GN with 1 group): per sample and group over (C/G, H, W),
  identical in train and eval. Affine gamma, beta are per channel for all kinds.
- BN under an APART perturbation (``rna_core.apart``): Eq. 3 with batch statistics per interleaved group.

Speed (``Network.prepare``): under autocast the affine runs in the activation's dtype and the statistics of the
explicit kernels in float32; on a channels_last input BGN and GN/IN/LN compute in the (N, H, W, C) view, so the
layout is kept (torch's own group_norm returns NCHW, and every following convolution would convert it back).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from rna_core.norms import NormSpec, check_groups

from .ops import to_device

EPS = 1e-5
MOMENTUM = 0.1


class _Affine(nn.Module):
    def __init__(self, channels: int, affine: bool) -> None:
        super().__init__()
        self.channels = channels
        if affine:
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)


class BatchNorm(_Affine):
    """BN with running statistics (no ``num_batches_tracked``: momentum is fixed). Attached to a ``DrawState``
    (``attach``), it computes APART's Eq. 3 with its slice of the state's perturbation while a perturbed pass runs."""

    def __init__(self, channels: int, affine: bool = True) -> None:
        super().__init__(channels, affine)
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.offset = -1
        self.state: DrawState | None = None
        self.sync = False  # SyncBN across the data-parallel world

    def attach(self, state: DrawState, offset: int) -> None:
        """Read APART perturbations from ``state`` at ``offset`` of the flat vector (``rna_core.apart``)."""
        self.state, self.offset = state, offset

    def synchronize(self, world_size: int) -> None:
        """Normalize training batches with global-batch statistics (``synchronized``)."""
        self.sync = world_size > 1

    def forward(self, x: torch.Tensor, running: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``running``: the (mean, var) buffers to read and update instead of the layer's own."""
        if self.state is not None and self.state.bn is not None:
            return self.perturbed(x, *self.state.bn)
        mean, var = running or (self.running_mean, self.running_var)
        if self.training and self.sync:
            return self.synchronized(x, mean, var)
        return F.batch_norm(x, mean, var, self.weight, self.bias, self.training, MOMENTUM, EPS)

    def synchronized(self, x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor) -> torch.Tensor:
        """Training-mode BN over the global batch: mu = all-reduced sum / n, then the biased var = all-reduced
        sum of (x - mu)^2 / n (two reductions, numerically as stable as one-process BN; both carry gradients);
        running statistics with n / (n - 1)."""
        import torch.distributed as dist
        from torch.distributed.nn.functional import all_reduce

        count = x.numel() // x.shape[1] * dist.get_world_size()
        mean = all_reduce(x.sum((0, 2, 3))) / count
        centred = x - mean.view(1, -1, 1, 1)
        var = all_reduce((centred * centred).sum((0, 2, 3))) / count
        with torch.no_grad():
            running_mean.lerp_(mean.detach(), MOMENTUM)
            running_var.lerp_(var.detach() * (count / max(count - 1, 1)), MOMENTUM)
        y = centred * torch.rsqrt(var.view(1, -1, 1, 1) + EPS)
        if self.weight is not None:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y

    def perturbed(self, x: torch.Tensor, delta: torch.Tensor, groups: int, track: bool) -> torch.Tensor:
        """Eq. 3, gamma (1 + d_sigma) (x - (1 + d_mu) mu_hat) / sigma_hat + beta, with mu_hat, sigma_hat^2 the
        biased batch statistics of each of ``groups`` interleaved groups (sample i in group i mod groups);
        computed by ``PerturbedBN`` (analytic backward, gradients through the batch statistics)."""
        if not self.training:
            raise RuntimeError("an APART BN perturbation needs training mode (batch statistics)")
        n, c, h, w = x.shape
        gamma = torch.ones(c, dtype=x.dtype, device=x.device) if self.weight is None else self.weight
        beta = torch.zeros(c, dtype=x.dtype, device=x.device) if self.bias is None else self.bias
        d_mu, d_sigma = delta[self.offset:self.offset + c], delta[self.offset + c:self.offset + 2 * c]
        y, mean, var = PerturbedBN.apply(x, gamma, beta, d_mu, d_sigma, groups)
        if track:
            count = n * h * w
            with torch.no_grad():
                self.running_mean.lerp_(mean.view(c), MOMENTUM)
                self.running_var.lerp_(var.view(c) * (count / max(count - 1, 1)), MOMENTUM)
        return y


class PerturbedBN(torch.autograd.Function):
    """Eq. 3 per interleaved group with the backward written out (cheaper than autograd through ``var_mean``;
    ``benchmarks/apart_step_time.py`` measures it). Per group and channel, over its N values, with
    a = gamma (1 + d_sigma), k = 1 + d_mu, s = sqrt(var + eps), x_hat = (x - mu) / s and
    y = a (x - k mu) / s + beta; for an upstream gradient u with S = sum u, Q = sum u (x - k mu) / s:
        dL/dx = (a / s) (u - k S / N - x_hat Q / N)   (mu and s differentiated, as autograd would)
        dL/da = Q, dL/dk = -a (mu / s) S, dL/dbeta = S,
    summed over the groups for the per-channel gamma, beta, d_mu, d_sigma. First-order only."""

    @staticmethod
    def forward(ctx, x, gamma, beta, d_mu, d_sigma, groups: int):
        n, c, h, w = x.shape
        xg = x.view(n // groups, groups, c, h, w)
        dims, count = (0, 3, 4), n // groups * h * w
        mean = xg.sum(dims, keepdim=True) / count
        centred = xg - mean  # two-pass statistics: torch's CPU var_mean is several times slower
        var = (centred * centred).sum(dims, keepdim=True) / count
        rstd = torch.rsqrt(var + EPS)
        scale = (gamma * (1 + d_sigma)).view(1, 1, c, 1, 1) * rstd
        shift = beta.view(1, 1, c, 1, 1) - scale * d_mu.view(1, 1, c, 1, 1) * mean  # a (x - (1 + d_mu) mu) / s + beta
        y = torch.addcmul(shift, centred, scale).view(n, c, h, w)
        ctx.save_for_backward(x, gamma, d_mu, d_sigma, mean, rstd)
        ctx.groups = groups
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y, _grad_mean, _grad_var):
        x, gamma, d_mu, d_sigma, mean, rstd = ctx.saved_tensors
        n, c, h, w = x.shape
        groups = ctx.groups
        xg, u = x.view(n // groups, groups, c, h, w), grad_y.reshape(n // groups, groups, c, h, w)
        count = n // groups * h * w
        dims = (0, 3, 4)
        x_hat = torch.sub(xg, mean).mul_(rstd)
        s_u = u.sum(dims, keepdim=True)
        k = (1 + d_mu).view(1, 1, c, 1, 1)
        a = (gamma * (1 + d_sigma)).view(1, 1, c, 1, 1)
        q = (u * x_hat).sum(dims, keepdim=True) - (k - 1) * mean * rstd * s_u  # sum u (x - k mu) / s
        grad_x = grad_gamma = grad_beta = grad_mu = grad_sigma = None
        if ctx.needs_input_grad[0]:  # (a / s) u - (a / s) (k S / N) - (a / s) (Q / N) x_hat, two fused passes
            grad_x = torch.addcmul(-a * rstd * k * s_u / count, u, a * rstd)
            grad_x = grad_x.addcmul_(x_hat, -a * rstd * q / count).view(n, c, h, w)
        if ctx.needs_input_grad[1]:
            grad_gamma = (q * (1 + d_sigma).view(1, 1, c, 1, 1)).sum((0, 1)).view(c)
        if ctx.needs_input_grad[2]:
            grad_beta = s_u.sum((0, 1)).view(c)
        if ctx.needs_input_grad[3]:
            grad_mu = (-a * mean * rstd * s_u).sum((0, 1)).view(c)
        if ctx.needs_input_grad[4]:
            grad_sigma = (q * gamma.view(1, 1, c, 1, 1)).sum((0, 1)).view(c)
        return grad_x, grad_gamma, grad_beta, grad_mu, grad_sigma, None


class BatchGroupNorm(_Affine):
    """BGN: batch statistics pooled over each group of C/G channels (Eq. 3 of the RNA paper)."""

    def __init__(self, channels: int, groups: int, affine: bool = True) -> None:
        super().__init__(channels, affine)
        self.groups = check_groups(groups, channels, "BGN")
        self.register_buffer("running_mean", torch.zeros(groups))
        self.register_buffer("running_var", torch.ones(groups))

    def forward(self, x: torch.Tensor, running: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Viewed as (N, G, C/G * H * W), BGN is BN over G channels: one fused kernel, the same statistics.
        A channels_last input is normalized in NCHW and given back channels_last (``_via_nchw``).
        ``running``: the (mean, var) buffers to read and update instead of the layer's own."""
        if _is_channels_last(x):
            return _via_nchw(self, x, running)
        running_mean, running_var = running or (self.running_mean, self.running_var)
        xg = rearrange(x, "n (g c) h w -> n g (c h w)", g=self.groups)
        y = F.batch_norm(xg, running_mean, running_var, None, None, self.training, MOMENTUM, EPS).view_as(x)
        return _affine(y, self.weight, self.bias)


class GroupNorm(_Affine):
    """GN with G groups; IN (G = C) and LN (G = 1) are its extremes."""

    def __init__(self, channels: int, groups: int, affine: bool = True) -> None:
        super().__init__(channels, affine)
        self.groups = check_groups(groups, channels, "GN")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _is_channels_last(x):
            return _via_nchw(self, x)
        return F.group_norm(x, self.groups, self.weight, self.bias, EPS)


def _is_channels_last(x: torch.Tensor) -> bool:
    """A 4-D tensor stored (N, H, W, C) (and not also NCHW-contiguous, as a 1 x 1 map or one channel is)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _via_nchw(layer: nn.Module, x: torch.Tensor, *args) -> torch.Tensor:
    """``layer`` on a channels_last ``x``: normalized in NCHW (the fused kernels), given back channels_last. Two
    layout copies beat normalizing in the NHWC view with composite ops, measured on CPU (forward + backward, IN / BGN
    at 32 x C x 32 x 32, C = 16 / 64: 2-4x in float32 and bfloat16)."""
    return layer(x.contiguous(), *args).contiguous(memory_format=torch.channels_last)


def _affine(y: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None) -> torch.Tensor:
    """gamma y + beta per channel, in y's dtype (under autocast the float32 parameters are cast, not y)."""
    if weight is None:
        return y
    return torch.addcmul(bias.to(y.dtype).view(1, -1, 1, 1), y, weight.to(y.dtype).view(1, -1, 1, 1))


LAYERS = {"bn": lambda spec, c: BatchNorm(c, spec.affine),
          "bgn": lambda spec, c: BatchGroupNorm(c, spec.num_groups(c), spec.affine),
          **dict.fromkeys(("in", "gn", "ln"), lambda spec, c: GroupNorm(c, spec.num_groups(c), spec.affine))}


def make_norm(spec: NormSpec, channels: int) -> nn.Module:
    """The layer for one candidate on a ``channels``-wide feature map (``LAYERS``: one entry per kind of
    ``rna_core.norms.KINDS``)."""
    if spec.kind not in LAYERS:
        raise NotImplementedError(f"the torch backend has no layer for normalization kind {spec.kind!r}")
    return LAYERS[spec.kind](spec, channels)


class DrawState:
    """The draw of the forward that runs, shared by the slots, random weights and BN layers of one model: the path
    (host-side ints; for a compiled model also as a one-hot tensor on the device, ``select``, of width
    ``width``), the CTRW noise vector (a tensor on the model's device) and, during an APART pass, the BN
    perturbation (flat delta tensor, groups, track). ``pending``: a draw was written for the next forward (a
    user's randomized module's pre-hook then takes it instead of drawing)."""

    def __init__(self, num_slots: int, noise_size: int, delta_size: int) -> None:
        self.path = np.zeros(num_slots, np.int64)
        self.noise_size, self.delta_size = noise_size, delta_size
        self.select: torch.Tensor | None = None  # (L, K) one-hot on the device: compiled models only
        self.width = 0  # > 0: compiled, the one-hot's width (the most candidates of a slot)
        self.noise: torch.Tensor | None = None
        self.bn: tuple[torch.Tensor, int, bool] | None = None
        self.pending = False

    def write(self, path: np.ndarray, noise: np.ndarray | None, bn: tuple[torch.Tensor, int, bool] | None,
              device: torch.device) -> None:
        """The draw of the next forward: ``bn`` = (delta tensor, groups, track) of an APART pass, or None."""
        self.path[:] = path
        if self.width:
            onehot = np.zeros((len(path), self.width), np.float32)
            onehot[np.arange(len(path)), path] = 1.0
            self.select = to_device(onehot, device)
        if noise is not None:
            self.noise = to_device(noise, device)
        self.bn = bn

    def noise_for(self, offset: int, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        if self.noise is None:
            raise RuntimeError("this model has random weights but its draw carries no noise")
        if self.noise.device != like.device or self.noise.dtype != like.dtype:
            self.noise = self.noise.to(like.device, like.dtype)
        return self.noise[offset:offset + math.prod(shape)].view(shape)


class RandomWeight(nn.Module):
    """CTRW's random weight (Eq. 4): x * (mu + sigma * eps), mu and sigma (shape ``shape``, initialised to 1)
    trainable, eps the current draw's noise slice; broadcast over the batch."""

    def __init__(self, shape: tuple[int, ...], offset: int, state: DrawState) -> None:
        super().__init__()
        self.mu = nn.Parameter(torch.ones(shape))
        self.sigma = nn.Parameter(torch.ones(shape))
        self.offset, self.shape, self.state = offset, tuple(shape), state

    def weight(self) -> torch.Tensor:
        return self.mu + self.sigma * self.state.noise_for(self.offset, self.shape, self.mu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight()


class StridedPointwise(nn.Conv2d):
    """A 1 x 1 convolution with stride s > 1 and no padding (a ResNet shortcut). On a channels_last CPU input it
    runs as the stride-1 convolution of x[:, :, ::s, ::s], the same numbers: torch 2.13's CPU kernel (oneDNN on an
    AVX2 machine) gives the strided 1 x 1 convolution of a channels_last input with 2 to 7 input channels a wrong
    weight gradient (off by up to 100 %; ``test_a_strided_pointwise_convolution_of_channels_last_is_right``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            return F.conv2d(x[:, :, ::self.stride[0], ::self.stride[1]], self.weight, self.bias)
        return super().forward(x)


class RandomConv(nn.Conv2d):
    """CTRW's "filter" variant (Table 4): a convolution whose kernel is multiplied by a random weight."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int, bias: bool, offset: int,
                 state: DrawState) -> None:
        super().__init__(cin, cout, kernel, stride, padding, bias=bias)
        self.random = RandomWeight(tuple(self.weight.shape), offset, state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.random.weight(), self.bias)


class NormSlot(nn.Module):
    """RNA module: several candidates, exactly one of which runs per forward.

    The candidate is chosen by the model's current path (``DrawState``), read on the host, so only
    the selected layer is computed and no device synchronisation happens. Candidates are children named
    by their spec key (``bn``, ``in``, ``gn8``...), which gives canonical names such as
    ``layer1.0.main.norm1.in.weight``. A slot outside the path space (``slot=None``) has one candidate.

    Compiled (``mix = True``, set by ``Network.prepare``): a host-side choice would make the compiler specialise
    on it, one graph per path. Instead every candidate runs and the output is sum_k s_k y_k with s the
    slot's row of the one-hot ``DrawState.select`` (a tensor: one graph serves every path). Unselected
    candidates get exact zero gradients (``Network.drop_unselected_grads`` turns them back into None, so the
    optimizer leaves them alone as in eager mode) and keep their running statistics: r <- r_old + s_k (r_new -
    r_old).
    """

    def __init__(self, channels: int, specs: tuple[NormSpec, ...], slot: int | None, state: DrawState) -> None:
        super().__init__()
        self.slot = slot
        for spec in specs:
            self.add_module(spec.key, make_norm(spec, channels))
        self.keys = [s.key for s in specs]
        self.mix = False
        self.state = state

    def selected(self) -> nn.Module:
        k = 0 if self.slot is None or len(self.keys) == 1 else int(self.state.path[self.slot])
        return getattr(self, self.keys[k])

    def unselected(self) -> list[nn.Module]:
        """The candidates the current path does not run."""
        chosen = self.selected()
        return [m for m in (getattr(self, k) for k in self.keys) if m is not chosen]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.mix or self.slot is None or len(self.keys) == 1:
            return self.selected()(x)
        s = self.state.select[self.slot]
        out = None
        for k, key in enumerate(self.keys):
            y = _masked_running_stats(getattr(self, key), x, s[k]).to(x.dtype) * s[k].to(x.dtype)
            out = y if out is None else out + y
        return out


def _masked_running_stats(layer: nn.Module, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``layer(x)``, its running statistics (if it tracks any, in training) moved only by ``weight`` in {0, 1}:
    the layer updates copies, r <- r + weight (r_copy - r) (the copies, not r, are what its backward saves)."""
    if not (layer.training and isinstance(layer, BatchNorm | BatchGroupNorm)):
        return layer(x)
    mean, var = layer.running_mean.clone(), layer.running_var.clone()
    y = layer(x, (mean, var))
    with torch.no_grad():
        layer.running_mean.lerp_(mean, weight)
        layer.running_var.lerp_(var, weight)
    return y
