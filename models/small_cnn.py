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
    slots = SlotCounter()
    children: list[tuple[str, object]] = [("normalize", normalize(in_channels, mean, std))]
    cin = in_channels
    for i, cout in enumerate((width, width, 2 * width, 2 * width), start=1):
        children += [(f"conv{i}", Conv(cin, cout, 3, 1, 1)), (f"norm{i}", slots.norm(cout)), (f"relu{i}", ReLU())]
        if i % 2 == 0:
            children.append((f"pool{i // 2}", MaxPool(2, 2, 0)))
        cin = cout
    children += [("pool", GlobalAvgPool()), ("fc", Linear(cin, num_classes))]
    return Graph("small_cnn", seq(*children), slots.count, in_channels, num_classes,
                 {"width": width, "mean": list(mean), "std": list(std)})
