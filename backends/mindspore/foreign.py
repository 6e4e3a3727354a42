"""A user's own MindSpore ``nn.Cell`` (images in [0, 1] -> logits) driven by rna-core's attacks and evaluation:
``Adopted`` gives it the interface of a built ``Network`` (``construct(x, draw)``, ``next_draw``, ``programs``),
ignoring the draw: the cell is deterministic or random in its own way (detected by ``differs_between_forwards``),
so only the protocols that hold no draw apply to a random one. Randomizing a cell's BatchNorm layers
(``randomize`` on torch) is not offered on MindSpore yet.
"""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

from rna_core.apart import BNLayout
from rna_core.controller import UnheldController
from rna_core.models import graph as g

from .programs import Programs


class Adopted(nn.Cell):
    def __init__(self, cell: nn.Cell, num_classes: int, in_channels: int, random: bool, graph_mode: bool,
                 world_size: int = 1) -> None:
        super().__init__()
        self.module = cell
        self.controller = UnheldController(random)
        self.holdable = not random
        self.graph = g.Graph(f"adopted:{type(cell).__name__}", g.Seq(()), 1, in_channels, num_classes)
        self.bn_layout = BNLayout((), (), ())
        self.loss_scale = 1.0
        self.graph_mode = graph_mode
        self.programs = Programs(self, graph_mode, world_size)

    def construct(self, x, draw):
        return self.module(x)

    def next_draw(self):
        """A placeholder draw (the cell draws its own randomness, if any), as data so nothing is compiled in."""
        self.controller.next_draw()
        path, noise = Tensor(np.zeros(1, np.int32)), Tensor(np.zeros(1, np.float32))
        return ms.mutable((path, noise)) if self.graph_mode else (np.zeros(1, np.int32), noise)

    def param_mask(self, path=None) -> np.ndarray:
        return np.ones(len(self.trainable_params()), np.float32)


def differs_between_forwards(cell: nn.Cell, x: Tensor, tries: int = 3) -> bool:
    """True when forwards on the same input (eval mode) give different logits: the cell is randomized."""
    was = cell.training
    cell.set_train(False)
    first = cell(x).asnumpy()
    out = any(not np.array_equal(first, cell(x).asnumpy()) for _ in range(tries))
    cell.set_train(was)
    return out
