"""Placing CTRW's random weights in any architecture graph (Zhang et al. 2023, Sec. 4.3, Fig. 3d, Table 4).

Positions count along the root: 0 = the normalized input (before the first convolution), 1 = after the
stem (before stage ``layer1``), i + 1 = after stage ``layer{i}``; the last position is after the last stage,
the input of the pooling + FC head. The variant says where the weight sits around the first convolution
(Table 4) and needs position 0: ``in`` (on its input, the paper's choice and the only variant at other
positions), ``out`` (on its output), ``both`` (two independent random weights), ``filter`` (on its kernel).
The weight is elementwise over the feature map (C, H, W), as in the authors' code, so the graph needs the
input image size.
"""

from __future__ import annotations

import dataclasses

from .graph import Conv, GlobalAvgPool, Graph, Linear, MaxPool, RandomWeight, Residual, Seq, walk

VARIANTS = ("in", "out", "both", "filter")


def output_shape(node: object, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The (C, H, W) or (D,) shape ``node`` produces from input ``shape``."""
    if isinstance(node, Seq):
        for _, child in node.children:
            shape = output_shape(child, shape)
        return shape
    if isinstance(node, Residual):
        h = output_shape(node.pre, shape) if node.pre is not None else shape
        return output_shape(node.main, h)
    if isinstance(node, Conv | MaxPool):
        c = node.cout if isinstance(node, Conv) else shape[0]
        size = [(n + 2 * node.padding - node.kernel) // node.stride + 1 for n in shape[1:]]
        return (c, *size)
    if isinstance(node, GlobalAvgPool):
        return (shape[0],)
    if isinstance(node, Linear):
        return (node.cout,)
    return shape


def positions(graph: Graph) -> list[int]:
    """Root indices after which each position's random weight is inserted."""
    names = [n for n, _ in graph.root.children]
    stages = sorted((int(n[5:]), i) for i, n in enumerate(names) if n.startswith("layer") and n[5:].isdigit())
    if "normalize" not in names or not stages:
        raise ValueError(f"{graph.name}: CTRW positions need a 'normalize' input node and 'layer<i>' stages")
    return [names.index("normalize"), stages[0][1] - 1] + [i for _, i in stages]


def add_random_weight(graph: Graph, position: int = 0, variant: str = "in",
                      image_size: tuple[int, int] = (32, 32)) -> Graph:
    """``graph`` with CTRW's random weight(s) at ``position`` in ``variant``; names: ``ctrw`` (``in``),
    ``ctrw_out`` (``out``), both for ``both``, ``<first conv>.random`` for ``filter`` (parameters
    ``<name>.mu`` and ``<name>.sigma``)."""
    if variant not in VARIANTS:
        raise ValueError(f"CTRW variant must be one of {VARIANTS}, got {variant!r}")
    if graph.noise_size:
        raise ValueError(f"{graph.name} already holds random weights")
    where = positions(graph)
    if not 0 <= position < len(where):
        raise ValueError(f"{graph.name}: CTRW position must be in 0..{len(where) - 1}, got {position}")
    if variant != "in" and position != 0:
        raise ValueError(f"CTRW variant {variant!r} concerns the first convolution: it needs position 0")
    children = list(graph.root.children)
    shape: tuple[int, ...] = (graph.in_channels, *image_size)
    shapes = []
    for _, child in children:
        shape = output_shape(child, shape)
        shapes.append(shape)
    offset = 0

    def weight(s: tuple[int, ...]) -> RandomWeight:
        nonlocal offset
        rw = RandomWeight(tuple(s), offset)
        offset += rw.size
        return rw

    at = where[position]
    conv_at = next(i for i, (_, c) in enumerate(children) if isinstance(c, Conv))
    if variant == "filter":
        name, conv = children[conv_at]
        children[conv_at] = (name, dataclasses.replace(conv, random=weight((conv.cout, conv.cin, conv.kernel,
                                                                             conv.kernel))))
    else:
        inserts = []
        if variant in ("in", "both"):
            inserts.append((at, ("ctrw", weight(shapes[at]))))
        if variant in ("out", "both"):
            inserts.append((conv_at, ("ctrw_out", weight(shapes[conv_at]))))
        for i, item in sorted(inserts, key=lambda t: t[0], reverse=True):
            children.insert(i + 1, item)
    config = {**graph.config, "ctrw": {"position": position, "variant": variant, "image_size": list(image_size)}}
    return dataclasses.replace(graph, root=Seq(tuple(children)), config=config, noise_size=offset)


def random_weights(graph: Graph) -> dict[str, RandomWeight]:
    """Canonical parameter prefix -> random weight, for every random weight in ``graph``."""
    out = {}
    for name, node in walk(graph.root):
        if isinstance(node, RandomWeight):
            out[name] = node
        elif isinstance(node, Conv) and node.random is not None:
            out[f"{name}.random"] = node.random
    return out


def user_weight_shape(where: str, target: str | None, features: int | None,
                      input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """Shape of CTRW's random weight on a user's own model (``randomize(..., random_weight=where)``): the image's
    (C, H, W) = ``input_shape`` at the input (``where="input"``) or before a named convolution (``target="conv"``),
    (``features``,) before a named linear / dense layer (``target="linear"``). ``target`` is otherwise the named
    layer's class name, refused."""
    if where == "input" or target == "conv":
        if input_shape is None or len(input_shape) != 3:
            raise ValueError(f"random_weight={where!r} weights a (C, H, W) map: give input_shape=(C, H, W) (of "
                             f"{'the image' if where == 'input' else 'the input of that layer'}), got {input_shape!r}")
        return tuple(int(v) for v in input_shape)
    if target == "linear":
        return (int(features),)
    raise ValueError(f"random_weight={where!r} is a {target}; a named target must be a linear / dense layer (its "
                     "input features are weighted) or a convolution (its input map)")
