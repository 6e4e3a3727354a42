"""``Model``: everything the core may use of a backend's model, the same members on every backend.

A backend's ``build_model`` (a graph of ``rna_core.models``) and ``adopt`` (a user's own module or cell) both return
an object with these members; the core reaches the model's computations only through the Backend's primitives,
and reads nothing else of it (see docs/architecture.md, "The model protocol").
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .apart import BNLayout
from .controller import DrawController


@runtime_checkable
class Model(Protocol):
    """``num_classes`` / ``in_channels``: logits per image and image channels; ``controller``: the draws of its
    forwards (path, CTRW noise) and their sampling policy; ``bn_layout``: APART's BN layers and their slices of
    the perturbation vector (empty: none); ``sigma_names``: canonical names of CTRW's sigma parameters (empty:
    no random weight); ``holdable``: its draws can be held (rna-core's randomness, or none); ``set_train``: batch
    statistics and running-statistic updates (True) or the running statistics (False)."""

    num_classes: int
    in_channels: int
    controller: DrawController
    bn_layout: BNLayout
    sigma_names: tuple[str, ...]
    holdable: bool

    def set_train(self, mode: bool = True) -> Any: ...
