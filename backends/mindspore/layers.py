"""Normalization layers, the RNA slot and CTRW's random weights for MindSpore (NCHW); the torch backend's formulas,
class names and constructor signatures.

Parameters are named as torch's (``weight``, ``bias``, ``running_mean``, ``running_var``), so canonical names need
no mapping. Each layer runs on MindSpore's fused kernels:
- BN and BGN: ``ops.BatchNorm`` over the group view (N, G, C/G * H, W), whose statistics are BGN's (Eq. 1 of the
  RNA paper: over (N, C/G, H, W) per group); BN (G = C) passes its affine to the kernel, BGN applies the per-channel
  affine after it. The kernel uses torch's momentum convention (running <- (1 - m) running + m * stat, m = 0.1,
  the unbiased variance; MindSpore's ``nn.BatchNorm2d`` would take 0.9 for the same update).
- GN, IN, LN: ``ops.LayerNorm`` over the per-sample group view (N * G, C/G * H * W) (MindSpore's InstanceNorm2d
  has no CPU kernel), then the per-channel affine.
APART's Eq. 3 and SyncBN keep explicit ops (``BatchNorm.perturbed`` and the all-reduced statistics).

The draw of a forward reaches the layers through the network's ``DrawState``: the path and the CTRW noise as
Parameters the host writes before each call (data, not constants: GRAPH_MODE compiles one graph for every path),
the path also as a host array (PyNative slots read it without a device synchronisation), APART's perturbation as
a Parameter (its gradient is the gradient with respect to that Parameter) with (groups, track) as constants each
compiled perturbed program reads once. A slot indexes a cell list of its candidates with its path entry (one
switch per slot), so only the selected candidate runs.
"""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from rna_core.norms import NormSpec, check_groups

EPS = 1e-5
MOMENTUM = 0.1


@ms.jit_class
class DrawState:
    """The draw of the forward that runs, shared by the slots and random weights of one model: ``path`` (int32 (L,))
    and ``noise`` (float32) Parameters, ``host`` (the path as a numpy array, what eager slots read), ``delta`` (the
    flat BN perturbation, a Parameter whose gradient is APART's g_theta), ``groups`` (> 0 while a perturbed pass
    runs: Eq. 3 with that many groups) and ``track``. ``compiled``: the model runs in GRAPH_MODE (slots switch on
    the Parameter). Held by reference (a jit class): none of its Parameters is the model's state or trained."""

    def __init__(self, num_slots: int, noise_size: int, delta_size: int) -> None:
        self.host = np.zeros(num_slots, np.int32)
        self.path = Parameter(Tensor(np.zeros(max(num_slots, 1), np.int32)), name="rna_path", requires_grad=False)
        self.noise = Parameter(Tensor(np.zeros(max(noise_size, 1), np.float32)), name="rna_noise",
                               requires_grad=False)
        self.delta = Parameter(Tensor(np.zeros(max(delta_size, 1), np.float32)), name="rna_delta")  # PyNative
        # differentiates only a Parameter that requires grad
        self.groups = 0
        self.track = True
        self.compiled = False
        self.pending = False  # the draw of the call that runs is written (a randomized cell's hook draws none)
        self._written: tuple | None = None

    def write(self, path: np.ndarray, noise: np.ndarray | None, delta: np.ndarray | None) -> None:
        """The draw of the next call (what the last call had is not written again: a held draw costs nothing)."""
        path = np.asarray(path, np.int32)
        last = self._written
        if last is None or not np.array_equal(last[0], path):
            self.host[:] = path
            if self.compiled and path.size:
                self.path.copy_(Tensor(path))
        if noise is not None and (last is None or last[1] is None or not np.array_equal(last[1], noise)):
            self.noise.copy_(Tensor(np.asarray(noise, np.float32)))
        if delta is not None:
            self.delta.copy_(Tensor(delta if delta.size else np.zeros(1, np.float32)))
        self._written = (path.copy(), None if noise is None else np.array(noise, np.float32))


class _Affine(nn.Cell):
    def __init__(self, channels: int, affine: bool) -> None:
        super().__init__()
        self.channels = channels
        self.affine = affine
        if affine:
            self.weight = Parameter(Tensor(ops.ones(channels, ms.float32)), name="weight")
            self.bias = Parameter(Tensor(ops.zeros(channels, ms.float32)), name="bias")

    def _scale(self, y):
        if self.affine:
            return y * self.weight.reshape(1, -1, 1, 1) + self.bias.reshape(1, -1, 1, 1)
        return y


class BatchGroupNorm(_Affine):
    """BGN with G groups: batch statistics over (N, C/G, H, W) of each group (Eq. 1 of the RNA paper)."""

    def __init__(self, channels: int, groups: int, affine: bool = True) -> None:
        super().__init__(channels, affine)
        self.groups = check_groups(groups, channels, "BGN")
        self.running_mean = Parameter(Tensor(ops.zeros(groups, ms.float32)), name="running_mean", requires_grad=False)
        self.running_var = Parameter(Tensor(ops.ones(groups, ms.float32)), name="running_var", requires_grad=False)
        self.sync = False  # SyncBN across the data-parallel world (set before compiling)
        self.world_size = 1
        self.all_reduce = None
        self.fused_affine = affine and groups == channels
        self.unit = Tensor(np.ones(groups, np.float32))
        self.zero = Tensor(np.zeros(groups, np.float32))
        self.bn_train = ops.BatchNorm(is_training=True, epsilon=EPS, momentum=MOMENTUM)
        self.bn_eval = ops.BatchNorm(is_training=False, epsilon=EPS)

    def synchronize(self, world_size: int) -> None:
        """Normalize training batches with global-batch statistics (``construct`` all-reduces the sums)."""
        self.sync, self.world_size, self.all_reduce = True, world_size, ops.AllReduce()

    def _track(self, mean, var, count: int):
        ops.assign(self.running_mean, (1 - MOMENTUM) * self.running_mean + MOMENTUM * ops.stop_gradient(mean))
        unbiased = ops.stop_gradient(var) * (count / max(count - 1, 1))
        ops.assign(self.running_var, (1 - MOMENTUM) * self.running_var + MOMENTUM * unbiased)

    def construct(self, x):
        if self.training and self.sync:
            return self.synchronized(x)
        n, c, h, w = x.shape
        g = self.groups
        xg = x if g == c else x.reshape(n, g, (c // g) * h, w)
        scale, shift = (self.weight, self.bias) if self.fused_affine else (self.unit, self.zero)
        if self.training:
            y = self.bn_train(xg, scale, shift, self.running_mean, self.running_var)[0]
        else:
            y = self.bn_eval(xg, scale, shift, self.running_mean, self.running_var)[0]
        if g == c:
            return y if self.fused_affine else self._scale(y)
        return self._scale(y.reshape(n, c, h, w))

    def synchronized(self, x):
        """SyncBN in training: the statistics of the data-parallel world's global batch (sums all-reduced;
        AllReduce has a gradient)."""
        n, c, h, w = x.shape
        g = self.groups
        xg = x.reshape(n, g, c // g, h, w).transpose(1, 0, 2, 3, 4).reshape(g, -1)
        count = xg.shape[1] * self.world_size
        mean = self.all_reduce(xg.sum(axis=1)) / count
        var = self.all_reduce(((xg - mean.reshape(g, 1)) ** 2).sum(axis=1)) / count
        self._track(mean, var, count)
        y = (xg - mean.reshape(g, 1)) / ops.sqrt(var.reshape(g, 1) + EPS)
        y = y.reshape(g, n, c // g, h, w).transpose(1, 0, 2, 3, 4).reshape(n, c, h, w)
        return self._scale(y)


class BatchNorm(BatchGroupNorm):
    """BN (BGN with G = C) with running statistics. Attached to a ``DrawState`` (``attach``), it computes APART's
    Eq. 3 with its slice of the state's perturbation while a perturbed pass runs (``perturbed``)."""

    def __init__(self, channels: int, affine: bool = True) -> None:
        super().__init__(channels, channels, affine)
        self.offset = -1
        self.state: DrawState | None = None

    def attach(self, state: DrawState, offset: int) -> None:
        """Read APART perturbations from ``state`` at ``offset`` of the flat vector (``rna_core.apart``)."""
        self.state, self.offset = state, offset

    def construct(self, x):
        if self.state is not None and self.state.groups > 0:
            if not self.training:
                raise RuntimeError("an APART BN perturbation needs training mode (batch statistics)")
            return self.perturbed(x, self.state.delta, self.state.groups, self.state.track)
        return super().construct(x)

    def perturbed(self, x, delta, groups: int, track: bool):
        """Eq. 3 of APART, gamma (1 + d_sigma) (x - (1 + d_mu) mu_hat) / sigma_hat + beta, with the biased batch
        statistics of each of ``groups`` interleaved groups (sample i in group i mod groups)."""
        n, c, h, w = x.shape
        xg = x.reshape(n // groups, groups, c, h * w)
        mean = xg.mean(axis=(0, 3), keep_dims=True)
        var = ((xg - mean) ** 2).mean(axis=(0, 3), keep_dims=True)
        if track:
            self._track(mean.reshape(c), var.reshape(c), n * h * w)
        d_mu = delta[self.offset:self.offset + c].reshape(1, 1, c, 1)
        d_sigma = delta[self.offset + c:self.offset + 2 * c].reshape(1, 1, c, 1)
        y = (xg - (1 + d_mu) * mean) / ops.sqrt(var + EPS) * (1 + d_sigma)
        return self._scale(y.reshape(n, c, h, w))


class GroupNorm(_Affine):
    """GN with G groups (IN: G = C, LN: G = 1): per-sample statistics over (C/G, H, W)."""

    def __init__(self, channels: int, groups: int, affine: bool = True) -> None:
        super().__init__(channels, affine)
        self.groups = check_groups(groups, channels, "GN")
        self.layer_norm = ops.LayerNorm(begin_norm_axis=1, begin_params_axis=1, epsilon=EPS)

    def construct(self, x):
        n, c, h, w = x.shape
        size = (c // self.groups) * h * w
        xg = x.reshape(n * self.groups, size)
        y = self.layer_norm(xg, ops.ones((size,), x.dtype), ops.zeros((size,), x.dtype))[0]
        return self._scale(y.reshape(n, c, h, w))


LAYERS = {"bn": lambda spec, c: BatchNorm(c, spec.affine),
          "bgn": lambda spec, c: BatchGroupNorm(c, spec.num_groups(c), spec.affine),
          **dict.fromkeys(("in", "gn", "ln"), lambda spec, c: GroupNorm(c, spec.num_groups(c), spec.affine))}


def make_norm(spec: NormSpec, channels: int) -> nn.Cell:
    """The layer for one candidate on a ``channels``-wide feature map (``LAYERS``: one entry per kind of
    ``rna_core.norms.KINDS``)."""
    if spec.kind not in LAYERS:
        raise NotImplementedError(f"the mindspore backend has no layer for normalization kind {spec.kind!r}")
    return LAYERS[spec.kind](spec, channels)


def unique_parameter_names(cell: nn.Cell) -> None:
    """Name every parameter by its path in ``cell`` (GRAPH_MODE needs unique parameter names)."""
    for name, param in cell.parameters_and_names():
        param.name = name


class NormSlot(nn.Cell):
    """RNA module: candidates named by spec key (their parameters keep the canonical names) and held again in the
    cell list ``choices``; ``construct(x)`` runs only the candidate of the state's path entry ``slot`` (one switch
    on the path Parameter when compiled; the host array eagerly). ``slot=None``: one candidate, outside the path."""

    def __init__(self, channels: int, specs: tuple[NormSpec, ...], slot: int | None, state: DrawState) -> None:
        super().__init__()
        self.slot = -1 if slot is None else slot
        self.keys = [s.key for s in specs]
        cells = [make_norm(spec, channels) for spec in specs]
        for spec, cell in zip(specs, cells, strict=True):
            self.insert_child_to_cell(spec.key, cell)
        self.single = len(cells) == 1
        if not self.single:
            self.choices = nn.CellList(cells)
        self.state = state
        self.float_in = False  # mixed precision: normalize the float16 / bfloat16 activations in float32
        unique_parameter_names(self)

    def construct(self, x):
        if self.float_in:
            x = x.astype(ms.float32)
        if self.single:
            return getattr(self, self.keys[0])(x)
        if self.state.compiled:
            return self.choices[self.state.path[self.slot]](x)
        return self.choices[int(self.state.host[self.slot])](x)


def candidate_owners(cell: nn.Cell) -> np.ndarray:
    """(n_trainable, 2): (slot, candidate) of each trainable parameter of ``cell`` that belongs to a
    multi-candidate RNA slot, else (-1, 0); rows in ``cell.trainable_params()`` order."""
    owner = {}
    for _, child in cell.cells_and_names():
        if isinstance(child, NormSlot) and len(child.keys) > 1:
            for i, key in enumerate(child.keys):
                owner.update({id(p): (child.slot, i) for p in getattr(child, key).trainable_params()})
    return np.array([owner.get(id(p), (-1, 0)) for p in cell.trainable_params()], np.int64).reshape(-1, 2)


def used_mask(owners: np.ndarray, path: np.ndarray) -> np.ndarray:
    """float32 (n_trainable,): 1 where the forward on ``path`` uses the parameter, 0 for the candidates it did not
    select (``owners`` from ``candidate_owners``; see ``optimizer.MaskedSGD``)."""
    slot, cand = owners[:, 0], owners[:, 1]
    rna = slot >= 0
    mask = np.ones(len(slot), np.float32)
    mask[rna] = np.asarray(path)[slot[rna]] == cand[rna]
    return mask


class RandomWeight(nn.Cell):
    """CTRW's random weight (Eq. 4): x * (mu + sigma * eps), mu and sigma (shape ``shape``, initialised to 1)
    trainable, eps = the state's noise[offset : offset + size] reshaped; broadcast over the batch."""

    def __init__(self, shape: tuple[int, ...], offset: int, state: DrawState) -> None:
        super().__init__()
        self.mu = Parameter(Tensor(np.ones(shape, np.float32)), name="mu")
        self.sigma = Parameter(Tensor(np.ones(shape, np.float32)), name="sigma")
        self.shape, self.start, self.stop = tuple(shape), offset, offset + int(np.prod(shape))
        self.state = state

    def weight(self):
        return self.mu + self.sigma * self.state.noise[self.start:self.stop].reshape(self.shape)

    def construct(self, x):
        return x * self.weight()


class RandomConv(nn.Cell):
    """CTRW's "filter" variant (Table 4): a convolution whose kernel is multiplied by a random weight; the
    kernel is the parameter ``weight`` as in nn.Conv2d, so canonical names match torch's."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int, bias: bool, offset: int,
                 state: DrawState) -> None:
        super().__init__()
        conv = nn.Conv2d(cin, cout, kernel, stride, pad_mode="pad", padding=padding, has_bias=bias)
        self.weight = conv.weight
        self.bias = conv.bias if bias else None
        self.random = RandomWeight(tuple(self.weight.shape), offset, state)
        self.conv = ops.Conv2D(cout, kernel, pad_mode="pad", pad=padding, stride=stride)

    def construct(self, x):
        y = self.conv(x, self.weight * self.random.weight())
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1)
        return y
