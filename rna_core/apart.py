"""APART's perturbable batch normalization (Eq. 3 of the APART paper), as the core sees it.

Every BN layer l of a model owns a per-channel perturbation (d_mu_l, d_sigma_l) and computes, in training mode,

    BN(x; d_mu, d_sigma) = gamma (1 + d_sigma) (x - (1 + d_mu) mu_hat) / sigma_hat + beta,       (Eq. 3)

mu_hat, sigma_hat = mean and sqrt(biased var + 1e-5) of the batch (per channel). The gradient is the exact one of
Eq. 3: it flows through mu_hat and sigma_hat, as in plain BN. (The authors' code takes the shift term's mu_hat and
sigma_hat from the running-average update, without gradient; Eq. 3 is the paper's definition, so we follow it.)

All perturbations of a model travel as one flat float32 vector ``delta``; layer l reads d_mu = delta[o : o + C]
and d_sigma = delta[o + C : o + 2C] at the offset o that ``bn_layout`` gives it, in graph order, so the vector
means the same thing on every backend. BN candidates of RNA slots are included (a candidate that the held path
does not select gets a zero gradient, hence a zero perturbation); GN/IN/LN/BGN candidates are not perturbed.

``groups = n`` computes the statistics per group of an interleaved split (sample i belongs to group i mod n),
Algorithm 1's S_1..S_n: "stop their group-to-group communications in BN layers". ``track = False`` leaves the
running statistics untouched (APART's second pass; SAM's second pass likewise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .models import graph as g
from .norms import PLAIN_BN, NormSpec
from .paths import PathSpace


@dataclass(frozen=True)
class BNLayout:
    """Canonical module names of the BN layers (``layer1.0.main.norm1.bn``), their channels and offsets."""

    names: tuple[str, ...]
    channels: tuple[int, ...]
    offsets: tuple[int, ...]

    @property
    def size(self) -> int:
        """Length of the flat perturbation vector: 2 C per layer."""
        return 2 * sum(self.channels)

    def offset_of(self) -> dict[str, int]:
        return dict(zip(self.names, self.offsets, strict=True))

    def check(self, delta: np.ndarray) -> np.ndarray:
        delta = np.asarray(delta, np.float32)
        if delta.shape != (self.size,):
            raise ValueError(f"BN perturbation must have shape ({self.size},) for this model, got {delta.shape}")
        return delta


def layout_of(norms: list[tuple[str, int, tuple[NormSpec, ...]]]) -> BNLayout:
    """The layout of normalization layers ``(name, channels, candidates)`` in order: every BN candidate, named
    ``<name>.<key>``, gets 2 C entries (d_mu, then d_sigma) at the next offset."""
    names, channels, offsets, offset = [], [], [], 0
    for name, c, specs in norms:
        for spec in specs:
            if spec.kind == "bn":
                names.append(f"{name}.{spec.key}")
                channels.append(c)
                offsets.append(offset)
                offset += 2 * c
    return BNLayout(tuple(names), tuple(channels), tuple(offsets))


def bn_layout(graph: g.Graph, space: PathSpace) -> BNLayout:
    """The BN layers of ``graph`` built over ``space``, in graph order (every backend builds the same names)."""
    return layout_of([(path, node.channels, PLAIN_BN if node.slot is None else space.candidates[node.slot])
                      for path, node in g.walk(graph.root) if isinstance(node, g.Norm)])


@dataclass(frozen=True)
class BNPerturbation:
    """How every BN layer runs during one pass: Eq. 3 with ``delta`` (flat, see ``BNLayout``), statistics per
    group of ``groups`` interleaved groups, running statistics updated iff ``track``."""

    delta: np.ndarray
    groups: int = 1
    track: bool = True

    def __post_init__(self) -> None:
        if self.groups < 1:
            raise ValueError(f"BN groups must be >= 1, got {self.groups}")
        if self.track and self.groups > 1:
            raise ValueError("running statistics can only be tracked with one group (groups=1)")
        object.__setattr__(self, "delta", np.asarray(self.delta, np.float32))

    def check_batch(self, batch: int) -> None:
        if batch % self.groups:
            raise ValueError(f"a batch of {batch} cannot be split into {self.groups} equal BN groups")


def adversarial_delta(grad: np.ndarray, eps: float) -> np.ndarray:
    """Algorithm 1, line 5: theta = eps sign(g_theta), the one-step maximiser over the box [-eps, eps]^d."""
    if eps < 0:
        raise ValueError(f"APART eps must be >= 0, got {eps}")
    return (eps * np.sign(grad)).astype(np.float32)


def random_delta(kind: str, size: int, eps: float, rng: np.random.Generator) -> np.ndarray:
    """Sec. 4.4's random baselines: ``uniform`` ~ U[-eps, eps]^d, ``binary`` ~ U{-eps, eps}^d."""
    if kind == "uniform":
        return rng.uniform(-eps, eps, size).astype(np.float32)
    if kind == "binary":
        return (eps * rng.choice((-1.0, 1.0), size)).astype(np.float32)
    raise ValueError(f"random perturbation kind must be 'uniform' or 'binary', got {kind!r}")


def second_pass_size(batch: int, ratio: float, groups: int) -> int:
    """N = round(ratio * M), which must split into ``groups`` equal groups."""
    if not 0 < ratio <= 1:
        raise ValueError(f"APART ratio N / M must lie in (0, 1], got {ratio}")
    n = int(round(ratio * batch))
    if n < groups or n % groups:
        raise ValueError(f"APART's second pass takes N = {n} of {batch} samples, which do not split into "
                         f"{groups} equal groups (recipe keys apart_ratio, apart_groups, batch_size)")
    return n


def shift_statistics(state: dict[str, np.ndarray], layout: BNLayout, which: str, eps: float,
                     v: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Sec. 4.5: the estimated statistics of every BN layer shifted by (1 + eps v), v in {-1, 1}^C per layer.
    ``mean``: mu <- (1 + eps v) mu; ``std``: sigma <- (1 + eps v) sigma with sigma = sqrt(running_var + 1e-5),
    i.e. running_var <- (1 + eps v)^2 (running_var + 1e-5) - 1e-5. Returns a new state."""
    if which not in ("mean", "std"):
        raise ValueError(f"statistic to shift must be 'mean' or 'std', got {which!r}")
    out = dict(state)
    for name in layout.names:
        s = 1.0 + eps * v[name].astype(np.float64)
        if which == "mean":
            out[f"{name}.running_mean"] = (s * state[f"{name}.running_mean"]).astype(np.float32)
        else:
            var = state[f"{name}.running_var"].astype(np.float64)
            out[f"{name}.running_var"] = (s**2 * (var + 1e-5) - 1e-5).astype(np.float32)
    return out
