"""ResNet-18 (the CIFAR stem, He et al. 2016, or the ImageNet stem) and ResNet-50 (ImageNet stem, bottleneck v1.5).

ResNet-18 has 20 normalization slots: stem 1 + 16 in blocks + 3 shortcuts. ResNet-50 has 53. The ImageNet-stem
ones are torchvision's architectures (its names map to ours: ``rna_core.models.torchvision_names``).
"""

from __future__ import annotations

from .graph import Conv, GlobalAvgPool, Graph, Linear, MaxPool, ReLU, Residual, SlotCounter, normalize, seq


def _basic(slots: SlotCounter, cin: int, cout: int, stride: int) -> Residual:
    main = seq(
        ("conv1", Conv(cin, cout, 3, stride, 1)), ("norm1", slots.norm(cout)), ("relu1", ReLU()),
        ("conv2", Conv(cout, cout, 3, 1, 1)), ("norm2", slots.norm(cout)),
    )
    short = None
    if stride != 1 or cin != cout:
        short = seq(("conv", Conv(cin, cout, 1, stride, 0)), ("norm", slots.norm(cout)))
    return Residual(main=main, shortcut=short)


def _bottleneck(slots: SlotCounter, cin: int, planes: int, stride: int) -> Residual:
    cout = planes * 4
    main = seq(
        ("conv1", Conv(cin, planes, 1)), ("norm1", slots.norm(planes)), ("relu1", ReLU()),
        ("conv2", Conv(planes, planes, 3, stride, 1)), ("norm2", slots.norm(planes)), ("relu2", ReLU()),
        ("conv3", Conv(planes, cout, 1)), ("norm3", slots.norm(cout)),
    )
    short = None
    if stride != 1 or cin != cout:
        short = seq(("conv", Conv(cin, cout, 1, stride, 0)), ("norm", slots.norm(cout)))
    return Residual(main=main, shortcut=short)


def resnet18(num_classes: int = 10, in_channels: int = 3, width: int = 64,
             mean: tuple[float, ...] = (0.0,), std: tuple[float, ...] = (1.0,)) -> Graph:
    """ResNet-18 with the CIFAR stem (3x3 conv, no max-pool); ``width`` is the first stage's channels."""
    return _resnet18("resnet18", num_classes, in_channels, width, mean, std, imagenet_stem=False)


def resnet18_imagenet(num_classes: int = 1000, in_channels: int = 3, width: int = 64,
                      mean: tuple[float, ...] = (0.0,), std: tuple[float, ...] = (1.0,)) -> Graph:
    """ResNet-18 with the ImageNet stem (7x7/2 conv, 3x3/2 max-pool): torchvision's ``resnet18``, the APART paper's
    ImageNet model."""
    return _resnet18("resnet18_imagenet", num_classes, in_channels, width, mean, std, imagenet_stem=True)


def _stem(slots: SlotCounter, in_channels: int, width: int, imagenet: bool) -> list[tuple[str, object]]:
    if not imagenet:
        return [("conv1", Conv(in_channels, width, 3, 1, 1)), ("norm1", slots.norm(width)), ("relu", ReLU())]
    return [("conv1", Conv(in_channels, width, 7, 2, 3)), ("norm1", slots.norm(width)), ("relu", ReLU()),
            ("maxpool", MaxPool(3, 2, 1))]


def _resnet18(name: str, num_classes: int, in_channels: int, width: int, mean: tuple[float, ...],
              std: tuple[float, ...], imagenet_stem: bool) -> Graph:
    slots = SlotCounter()
    children = [("normalize", normalize(in_channels, mean, std)), *_stem(slots, in_channels, width, imagenet_stem)]
    cin = width
    for i, (mult, stride) in enumerate(zip((1, 2, 4, 8), (1, 2, 2, 2), strict=True), start=1):
        cout = width * mult
        blocks = [(str(b), _basic(slots, cin if b == 0 else cout, cout, stride if b == 0 else 1)) for b in range(2)]
        children.append((f"layer{i}", seq(*blocks)))
        cin = cout
    children += [("pool", GlobalAvgPool()), ("fc", Linear(cin, num_classes))]
    return Graph(name, seq(*children), slots.count, in_channels, num_classes,
                 {"width": width, "mean": list(mean), "std": list(std)})


def resnet50(num_classes: int = 1000, in_channels: int = 3, width: int = 64,
             mean: tuple[float, ...] = (0.0,), std: tuple[float, ...] = (1.0,)) -> Graph:
    """ResNet-50 with the ImageNet stem (7x7/2 conv, 3x3/2 max-pool), stride on the 3x3 conv (v1.5)."""
    slots = SlotCounter()
    children = [("normalize", normalize(in_channels, mean, std)), *_stem(slots, in_channels, width, imagenet=True)]
    cin = width
    for i, (n, mult, stride) in enumerate(zip((3, 4, 6, 3), (1, 2, 4, 8), (1, 2, 2, 2), strict=True), start=1):
        planes = width * mult
        blocks = []
        for b in range(n):
            blocks.append((str(b), _bottleneck(slots, cin, planes, stride if b == 0 else 1)))
            cin = planes * 4
        children.append((f"layer{i}", seq(*blocks)))
    children += [("pool", GlobalAvgPool()), ("fc", Linear(cin, num_classes))]
    return Graph("resnet50", seq(*children), slots.count, in_channels, num_classes,
                 {"width": width, "mean": list(mean), "std": list(std)})
