"""Architectures, each defined once as a backend-neutral graph (``rna_core.models``).

``create("resnet18", num_classes=10, in_channels=1)`` returns a :class:`Graph`; a backend turns it
into modules with ``backend.build_model``.
"""

from __future__ import annotations

from collections.abc import Callable

from .graph import Graph
from .preact_resnet import preact_resnet18, wide_resnet
from .resnet import resnet18, resnet18_imagenet, resnet50
from .small_cnn import small_cnn


def _wrn(depth: int, widen: int) -> Callable[..., Graph]:
    def build(**kw) -> Graph:
        return wide_resnet(depth, widen, **kw)

    build.__doc__ = f"WRN-{depth}-{widen}."
    return build


ARCHITECTURES: dict[str, Callable[..., Graph]] = {
    "resnet18": resnet18,
    "resnet18_imagenet": resnet18_imagenet,
    "preact_resnet18": preact_resnet18,
    "wrn34_10": _wrn(34, 10),
    "wrn40_2": _wrn(40, 2),
    "resnet50": resnet50,
    "small_cnn": small_cnn,
}


def create(name: str, **kwargs) -> Graph:
    """Build the graph of architecture ``name`` (see ``ARCHITECTURES``)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; available: {sorted(ARCHITECTURES)}")
    try:
        return ARCHITECTURES[name](**kwargs)
    except TypeError as e:
        raise ValueError(f"architecture {name!r}: {e}") from None


__all__ = ["ARCHITECTURES", "Graph", "create"]
