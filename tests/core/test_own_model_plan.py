"""The plan of ``randomize`` for a user's module, computed before the module is touched: the slots and their
candidates, the candidate that takes each replaced layer's weights, APART's BN layout (the built graphs' layout
function), CTRW's random weight and its bounds, and every refusal, named."""

import numpy as np
import pytest

from rna_core.apart import bn_layout
from rna_core.models import create
from rna_core.own_model import Layer, Target, plan
from rna_core.paths import PathSpace

LAYERS = [Layer("bn1", "bn", 8), Layer("layer1.0.bn1", "bn", 16), Layer("head.gn", "gn", 16, 4)]


def test_slots_layout_and_weights_to_take():
    p = plan(LAYERS, "bn+in+gn:4", seed=3, replace=("bn", "gn"))
    assert p.space.num_layers == 3 and [len(c) for c in p.space.candidates] == [3, 3, 3]
    assert p.takes == ("bn", "bn", "gn4"), "each layer's weights go to the candidate of its kind (GN: its groups)"
    assert p.layout.names == ("bn1.bn", "layer1.0.bn1.bn", "head.gn.bn")
    assert p.layout.offsets == (0, 16, 48) and p.layout.size == 2 * (8 + 16 + 16)
    assert p.weight is None and p.sigma_bounds is None
    draws = [p.controller().draw().path for _ in range(2)]
    assert np.array_equal(*draws), "the controller's Generator is seeded by the plan's seed"


def test_gn_layer_without_a_matching_candidate_takes_nothing():
    p = plan([Layer("gn", "gn", 16, 2)], "bn+gn:4", replace=("gn",))
    assert p.takes == (None,)
    assert plan([Layer("bn", "bn", 8)], "in+ln").takes == (None,)


def test_the_layout_is_the_built_graphs_layout_function():
    graph = create("small_cnn", width=4)
    space = PathSpace.uniform("bn+in", graph.num_slots)
    built = bn_layout(graph, space)
    from rna_core.models.graph import Norm, walk

    layers = [Layer(name, "bn", node.channels) for name, node in walk(graph.root) if isinstance(node, Norm)]
    assert plan(layers, "bn+in").layout == built


def test_random_weight_shapes_and_bounds():
    head = plan(LAYERS[:1], "bn+in", target=Target("fc", "linear", 32))
    assert head.weight == ("fc", (32,)) and head.noise_size == 32
    lo, hi = head.sigma_bounds
    assert (lo, hi) == pytest.approx((1000 * 32 / 3072, 2400 * 32 / 3072))
    image = plan(LAYERS[:1], None, target=Target("input", "input"), input_shape=(1, 28, 28))
    assert image.weight == ("input", (1, 28, 28)) and image.space.num_layers == 1 and not image.layers
    conv = plan(LAYERS[:1], "bn", target=Target("conv1", "conv"), input_shape=(3, 16, 16), compiled=True)
    assert conv.weight == ("conv1", (3, 16, 16))


@pytest.mark.parametrize("kwargs, message", [
    ({"norms": None}, "nothing to randomize"),
    ({"layers": [], "norms": "bn+in"}, "no BatchNorm2d layer"),
    ({"replace": ("bn", "ln")}, "unknown layer kinds"),
    ({"norms": "bn+gn:3"}, "gn"),
    ({"target": Target("input", "input"), "input_shape": (3, 8, 8), "compiled": True}, "compiled model cannot"),
    ({"target": Target("input", "input")}, "input_shape"),
    ({"target": Target("bn1", "BatchNorm2d")}, "must be a linear"),
])
def test_refusals_name_the_problem(kwargs, message):
    args = {"layers": LAYERS[:2], "norms": "bn+in", **kwargs}
    with pytest.raises(ValueError, match=message):
        plan(args.pop("layers"), args.pop("norms"), **args)
