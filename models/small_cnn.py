"""A small plain CNN: four 3x3 conv-norm-ReLU layers with 2x2 max-pools after the second and fourth.

Channels (width, width, 2 width, 2 width), then global average pooling and a linear layer: 4 normalization
slots. The four-conv shape of the SmallCNN of Zhang et al. (2019, TRADES) on MNIST, with global pooling in place
of its two hidden fully connected layers; it compiles and runs in a fraction of ResNet-18's time, which makes it
the model of quick experiments and of the slow backends' tests.
"""

from __future__ import annotations

from .graph import Conv, GlobalAvgPool, Graph, Linear, MaxPool, ReLU, SlotCounter, normalize, seq


def small_cnn(num_classes: int = 10, in_channels: int = 3, width: int = 32,
              mean: tuple[float, ...] = (0.0,), std: tuple[float, ...] = (1.0,)) -> Graph:
    """Stem conv1 (``width``), stage ``layer1`` (conv ``width``, pool), stage ``layer2`` (2 convs ``2 width``,
    pool), head; the stage names give CTRW its positions 0..3."""
    slots = SlotCounter()

    def block(cin: int, cout: int) -> list[tuple[str, object]]:
        return [("conv", Conv(cin, cout, 3, 1, 1)), ("norm", slots.norm(cout)), ("relu", ReLU())]

    def stage(*blocks: list[tuple[str, object]]):
        children = [(str(i), seq(*b)) for i, b in enumerate(blocks)]
        return seq(*children, ("pool", MaxPool(2, 2, 0)))

    children: list[tuple[str, object]] = [
        ("normalize", normalize(in_channels, mean, std)),
        ("conv1", Conv(in_channels, width, 3, 1, 1)), ("norm1", slots.norm(width)), ("relu", ReLU()),
        ("layer1", stage(block(width, width))),
        ("layer2", stage(block(width, 2 * width), block(2 * width, 2 * width))),
        ("pool", GlobalAvgPool()), ("fc", Linear(2 * width, num_classes)),
    ]
    return Graph("small_cnn", seq(*children), slots.count, in_channels, num_classes,
                 {"width": width, "mean": list(mean), "std": list(std)})
