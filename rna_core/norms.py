"""Normalization candidates: the vocabulary of RNA's random space. Each kind is declared once (``NormKind``: its
grammar word, group rule, statistics and float64 reference, ``normalize``); a backend builds it in its layers.

Grammar (one candidate)::

    bn | in | ln            batch, instance, layer norm
    gn:G | bgn:G            group norm / batch-group norm with G groups (the paper's GN32, BGN32)
    gn@S | bgn@S            the same with a group *size* of S channels (groups = C // S, clamped to [1, C])
    ...[/na]                suffix: no affine (gamma, beta); e.g. ``in/na`` is torch's default InstanceNorm2d

Ranges expand to powers of two, as in the paper's Table 5: ``gn@1-64`` is GN with group sizes
1, 2, 4, ..., 64 (the paper's "GN[1-64]"), ``bgn:1-4`` is BGN with 1, 2 and 4 groups.

Reading of the paper: Sec. 3.1 calls IN and LN the special cases of GN with the maximum and
minimum number of groups, and BN the special case of BGN. BGN with G groups pools each group's
C/G channels over batch and space (one mean per group, as the authors' ``GroupBatchNorm2d``), so BN is
BGN with the maximum number of groups: ``bn`` = ``bgn@1``, ``in`` = ``gn@1``, ``ln`` = ``gn:1``.
Table 5's "BGN+GN[1-1]" (group size 1) is therefore BN+IN, the paper's best space.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NormKind:
    """A normalization kind, declared once: its ``name`` (the grammar word), whether it takes a group argument
    (``grouped``: ``kind:G`` / ``kind@S``), ``groups(channels)`` for an ungrouped kind, whether it normalizes with
    batch statistics (and keeps running estimates) and its float64 ``reference`` (``reference(x, spec, weight,
    bias, running_mean, running_var, training, momentum, eps) -> (y, running_mean, running_var)``, x N x C x H x
    W) that every backend's layer is tested against. A backend builds it in its ``layers.make_norm``."""

    name: str
    grouped: bool
    batch_statistics: bool
    reference: Callable
    groups: Callable[[int], int] | None = None


KINDS: dict[str, NormKind] = {}


def register_norm_kind(kind: NormKind) -> NormKind:
    if kind.name in KINDS:
        raise ValueError(f"normalization kind {kind.name!r} is registered already")
    if kind.grouped == (kind.groups is not None):
        raise ValueError(f"normalization kind {kind.name!r}: give groups(channels) exactly when it is not grouped")
    KINDS[kind.name] = kind
    return kind


def _grammar() -> re.Pattern:
    words = "|".join(sorted(KINDS, key=len, reverse=True))  # bgn before bn
    return re.compile(rf"^(?P<kind>{words})(?:(?P<sep>[:@])(?P<lo>\d+)(?:-(?P<hi>\d+))?)?(?P<na>/na)?$")


@dataclass(frozen=True)
class NormSpec:
    """One normalization candidate.

    ``groups`` counts groups (``gn:G``), ``group_size`` counts channels per group (``gn@S``);
    at most one of the two is set, and only for ``gn``/``bgn``.
    """

    kind: str
    groups: int | None = None
    group_size: int | None = None
    affine: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown normalization kind {self.kind!r}; expected one of {tuple(KINDS)}")
        grouped = KINDS[self.kind].grouped
        if grouped and (self.groups is None) == (self.group_size is None):
            raise ValueError(f"{self.kind} needs exactly one of groups (':G') or group_size ('@S')")
        if not grouped and (self.groups is not None or self.group_size is not None):
            raise ValueError(f"{self.kind} takes no group argument")
        for v in (self.groups, self.group_size):
            if v is not None and v < 1:
                raise ValueError(f"group argument must be >= 1, got {v}")

    @property
    def key(self) -> str:
        """Canonical string, also the parameter-name component of this candidate (``gn:8`` -> ``gn8``)."""
        return self.name.replace(":", "").replace("@", "s").replace("/na", "_na")

    @property
    def name(self) -> str:
        arg = f":{self.groups}" if self.groups is not None else f"@{self.group_size}" if self.group_size else ""
        return f"{self.kind}{arg}{'' if self.affine else '/na'}"

    @property
    def uses_batch_statistics(self) -> bool:
        """BN and BGN normalize with batch statistics in training and running estimates at inference."""
        return KINDS[self.kind].batch_statistics

    def num_groups(self, channels: int) -> int:
        """Number of groups this candidate uses on a layer with ``channels`` channels.

        ``bn`` and ``in`` -> C (one channel per group), ``ln`` -> 1, ``gn@S`` -> C // S clamped to
        [1, C]. A group count must divide C.
        """
        kind = KINDS[self.kind]
        if not kind.grouped:
            return kind.groups(channels)
        g = self.groups if self.groups is not None else max(1, channels // self.group_size)
        return check_groups(min(g, channels), channels, self.name)

    def __str__(self) -> str:
        return self.name


def check_groups(groups: int, channels: int, what: str) -> int:
    """``groups`` if it divides ``channels``, else a ValueError naming ``what``."""
    if groups < 1 or channels % groups:
        raise ValueError(f"{what}: {groups} groups do not divide {channels} channels")
    return groups


def parse_norms(text: str | list[str] | tuple[str, ...]) -> tuple[NormSpec, ...]:
    """Parse a comma/plus separated list (``"bn+in"``, ``"bn,gn@1-64"``) or a list of specs, expanding ranges."""
    items = re.split(r"[,+\s]+", text.strip()) if isinstance(text, str) else list(text)
    out: list[NormSpec] = []
    for item in items:
        if isinstance(item, NormSpec):
            out.append(item)
            continue
        out.extend(_parse_one(item))
    if not out:
        raise ValueError("empty normalization list")
    keys = [s.key for s in out]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(f"duplicate normalization candidates: {dup}")
    return tuple(out)


def _parse_one(item: str) -> list[NormSpec]:
    m = _grammar().match(item.strip().lower())
    if not m:
        raise ValueError(
            f"bad normalization spec {item!r}: expected bn, in, ln, gn:G, gn@S, bgn:G, bgn@S, "
            "a power-of-two range such as gn@1-64, optionally followed by /na"
        )
    kind, sep, affine = m["kind"], m["sep"], m["na"] is None
    if sep is None:
        return [NormSpec(kind, affine=affine)]
    if not KINDS[kind].grouped:
        raise ValueError(f"bad normalization spec {item!r}: {kind} takes no group argument")
    lo = int(m["lo"])
    hi = int(m["hi"]) if m["hi"] else lo
    if m["hi"]:
        if lo < 1 or hi < lo or lo & (lo - 1) or hi & (hi - 1):
            raise ValueError(f"bad range in {item!r}: bounds must be powers of two with lo <= hi")
    values = [lo] if not m["hi"] else [v for v in (2**k for k in range(hi.bit_length())) if lo <= v <= hi]
    field = "groups" if sep == ":" else "group_size"
    return [NormSpec(kind, affine=affine, **{field: v}) for v in values]


def _affine(y: np.ndarray, spec: NormSpec, weight, bias) -> np.ndarray:
    if not spec.affine:
        return y
    c = y.shape[1]
    wt = np.ones(c) if weight is None else np.asarray(weight, np.float64)
    b = np.zeros(c) if bias is None else np.asarray(bias, np.float64)
    return y * wt.reshape(1, c, 1, 1) + b.reshape(1, c, 1, 1)


def batch_group_reference(x, spec: NormSpec, weight=None, bias=None, running_mean=None, running_var=None,
                          training: bool = True, momentum: float = 0.1, eps: float = 1e-5):
    """BN / BGN (G groups; BN: G = C): statistics over (N, C/G, H, W) of each group; training normalizes with the
    biased variance and updates running <- (1 - m) running + m * stat with the unbiased variance var * n / (n - 1),
    n = N * C/G * H * W; evaluation normalizes with the running statistics. Then gamma x_hat + beta if affine."""
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    g = spec.num_groups(c)
    xg = x.reshape(n, g, c // g, h, w)
    rm = np.zeros(g) if running_mean is None else np.asarray(running_mean, np.float64).copy()
    rv = np.ones(g) if running_var is None else np.asarray(running_var, np.float64).copy()
    if training:
        mean, var = xg.mean(axis=(0, 2, 3, 4)), xg.var(axis=(0, 2, 3, 4))
        count = xg.size // g
        rm = (1 - momentum) * rm + momentum * mean
        rv = (1 - momentum) * rv + momentum * var * count / (count - 1)
    else:
        mean, var = rm, rv
    shape = (1, g, 1, 1, 1)
    y = ((xg - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)).reshape(n, c, h, w)
    return _affine(y, spec, weight, bias), rm, rv


def sample_group_reference(x, spec: NormSpec, weight=None, bias=None, running_mean=None, running_var=None,
                           training: bool = True, momentum: float = 0.1, eps: float = 1e-5):
    """GN / IN / LN (G groups; IN: G = C, LN: G = 1): statistics over (C/G, H, W) per sample, in training and
    evaluation alike; no running statistics (None). Then gamma x_hat + beta if affine."""
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    g = spec.num_groups(c)
    xg = x.reshape(n, g, c // g, h, w)
    mean, var = xg.mean(axis=(2, 3, 4), keepdims=True), xg.var(axis=(2, 3, 4), keepdims=True)
    y = ((xg - mean) / np.sqrt(var + eps)).reshape(n, c, h, w)
    return _affine(y, spec, weight, bias), None, None


def normalize(x: np.ndarray, spec: NormSpec, weight: np.ndarray | None = None, bias: np.ndarray | None = None,
              running_mean: np.ndarray | None = None, running_var: np.ndarray | None = None,
              training: bool = True, momentum: float = 0.1, eps: float = 1e-5):
    """(y, running_mean, running_var) of ``spec`` in float64 (its kind's reference)."""
    return KINDS[spec.kind].reference(x, spec, weight, bias, running_mean, running_var, training, momentum, eps)


for _kind in (NormKind("bn", False, True, batch_group_reference, groups=lambda c: c),
              NormKind("bgn", True, True, batch_group_reference),
              NormKind("in", False, False, sample_group_reference, groups=lambda c: c),
              NormKind("gn", True, False, sample_group_reference),
              NormKind("ln", False, False, sample_group_reference, groups=lambda c: 1)):
    register_norm_kind(_kind)

PLAIN_BN = parse_norms("bn")  # the one candidate of a normalization layer outside the path space
