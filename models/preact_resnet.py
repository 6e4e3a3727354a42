"""Pre-activation ResNet-18 (He et al. 2016b) and Wide ResNets (Zagoruyko & Komodakis 2016).

Both use pre-activation blocks: pre = norm + ReLU, a projection shortcut reads pre(x), an identity
shortcut reads x. WRN-d-k has (d - 4) / 6 blocks per stage; the papers' "WideResNet32" is WRN-34-10
with 30 randomized slots and one final BN outside the path space (as the authors' code).
"""

from __future__ import annotations

from .graph import Conv, GlobalAvgPool, Graph, Linear, ReLU, Residual, SlotCounter, normalize, seq


def _preact(slots: SlotCounter, cin: int, cout: int, stride: int) -> Residual:
    pre = seq(("norm1", slots.norm(cin)), ("relu1", ReLU()))
    main = seq(("conv1", Conv(cin, cout, 3, stride, 1)), ("norm2", slots.norm(cout)), ("relu2", ReLU()),
               ("conv2", Conv(cout, cout, 3, 1, 1)))
    short = seq(("conv", Conv(cin, cout, 1, stride, 0))) if stride != 1 or cin != cout else None
    return Residual(main=main, pre=pre, shortcut=short, shortcut_from_pre=True, post_relu=False)


def _stages(slots: SlotCounter, widths: list[int], depth_per_stage: int, cin: int) -> list[tuple[str, object]]:
    out = []
    for i, (cout, stride) in enumerate(zip(widths, (1, 2, 2, 2), strict=False), start=1):
        blocks = []
        for b in range(depth_per_stage):
            blocks.append((str(b), _preact(slots, cin, cout, stride if b == 0 else 1)))
            cin = cout
        out.append((f"layer{i}", seq(*blocks)))
    return out


def preact_resnet18(num_classes: int = 10, in_channels: int = 3, width: int = 64,
                    mean: tuple[float, ...] = (0.0,), std: tuple[float, ...] = (1.0,)) -> Graph:
    """PreAct-ResNet-18: 16 slots in blocks + the final norm = 17 randomized slots."""
    slots = SlotCounter()
    children: list[tuple[str, object]] = [("normalize", normalize(in_channels, mean, std)),
                                          ("conv1", Conv(in_channels, width, 3, 1, 1))]
    children += _stages(slots, [width, 2 * width, 4 * width, 8 * width], 2, width)
    children += [("norm", slots.norm(8 * width)), ("relu", ReLU()), ("pool", GlobalAvgPool()),
                 ("fc", Linear(8 * width, num_classes))]
    return Graph("preact_resnet18", seq(*children), slots.count, in_channels, num_classes,
                 {"width": width, "mean": list(mean), "std": list(std)})


def wide_resnet(depth: int = 34, widen: int = 10, num_classes: int = 10, in_channels: int = 3,
                mean: tuple[float, ...] = (0.0,), std: tuple[float, ...] = (1.0,),
                randomize_final_norm: bool = False) -> Graph:
    """WRN-depth-widen with stages 16k, 32k, 64k; the final BN is randomized only if asked."""
    if (depth - 4) % 6:
        raise ValueError(f"WRN depth must be 6n + 4, got {depth}")
    n = (depth - 4) // 6
    slots = SlotCounter()
    children: list[tuple[str, object]] = [("normalize", normalize(in_channels, mean, std)),
                                          ("conv1", Conv(in_channels, 16, 3, 1, 1))]
    widths = [16 * widen, 32 * widen, 64 * widen]
    children += _stages(slots, widths, n, 16)
    children += [("norm", slots.norm(widths[-1], randomized=randomize_final_norm)), ("relu", ReLU()),
                 ("pool", GlobalAvgPool()), ("fc", Linear(widths[-1], num_classes))]
    return Graph(f"wrn{depth}_{widen}", seq(*children), slots.count, in_channels, num_classes,
                 {"depth": depth, "widen": widen, "mean": list(mean), "std": list(std)})
