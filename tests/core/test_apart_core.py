"""APART's core pieces (numpy only): the BN layout, perturbation checks, Sec. 4.4/4.5 perturbations, recipes."""

import numpy as np
import pytest

from rna_core import models
from rna_core.apart import (
    BNPerturbation,
    adversarial_delta,
    bn_layout,
    random_delta,
    second_pass_size,
    shift_statistics,
)
from rna_core.paths import PathSpace
from rna_core.recipes import RECIPES, get_recipe


def test_layout_lists_bn_candidates_in_graph_order():
    graph = models.create("resnet18", num_classes=10, width=4)
    plain = bn_layout(graph, PathSpace.uniform("bn", graph.num_slots))
    assert plain.names[:3] == ("norm1.bn", "layer1.0.main.norm1.bn", "layer1.0.main.norm2.bn")
    assert plain.size == 2 * sum(plain.channels)
    assert plain.offsets == tuple(np.cumsum([0, *(2 * c for c in plain.channels[:-1])]))
    mixed = bn_layout(graph, PathSpace.uniform("bn+in", graph.num_slots))
    no_bn = bn_layout(graph, PathSpace.uniform("in+gn:2", graph.num_slots))
    assert mixed.names == plain.names and no_bn.names == () and no_bn.size == 0
    wrn = models.create("wrn40_2", num_classes=10)  # its final BN sits outside the path space: always plain BN
    assert bn_layout(wrn, PathSpace.uniform("in", wrn.num_slots)).names == ("norm.bn",)


def test_layout_offsets_and_shape_check():
    graph = models.create("small_cnn", num_classes=10, width=4)
    layout = bn_layout(graph, PathSpace.uniform("bn", graph.num_slots))
    assert layout.offset_of() == {"norm1.bn": 0, "layer1.0.norm.bn": 8, "layer2.0.norm.bn": 16,
                                  "layer2.1.norm.bn": 32}  # [d_mu (C), d_sigma (C)] per layer
    with pytest.raises(ValueError, match=f"shape \\({layout.size},\\)"):
        layout.check(np.zeros(3))


def test_perturbation_rules():
    assert BNPerturbation(np.zeros(4), 4, False).delta.dtype == np.float32
    with pytest.raises(ValueError, match="one group"):
        BNPerturbation(np.zeros(4), 2, True)
    with pytest.raises(ValueError, match="cannot be split into 3"):
        BNPerturbation(np.zeros(4), 3, False).check_batch(8)
    np.testing.assert_array_equal(adversarial_delta(np.array([-2.0, 0.0, 1e-9]), 0.1),
                                  np.float32([-0.1, 0.0, 0.1]))
    assert second_pass_size(128, 1.0, 16) == 128 and second_pass_size(128, 0.1875, 8) == 24
    with pytest.raises(ValueError, match="do not split into 16"):
        second_pass_size(128, 0.1875, 16)


def test_random_baselines_have_the_radius():
    rng = np.random.default_rng(0)
    u, b = random_delta("uniform", 10_000, 0.2, rng), random_delta("binary", 10_000, 0.2, rng)
    assert np.abs(u).max() <= 0.2 and 0.09 < np.abs(u).mean() < 0.11
    assert set(np.unique(b)) == {np.float32(-0.2), np.float32(0.2)}
    with pytest.raises(ValueError, match="uniform' or 'binary"):
        random_delta("gauss", 3, 0.1, rng)


def test_statistics_shift_scales_mu_and_sigma():
    graph = models.create("small_cnn", num_classes=10, width=4)
    layout = bn_layout(graph, PathSpace.uniform("bn", graph.num_slots))
    rng = np.random.default_rng(0)
    sizes = dict(zip(layout.names, layout.channels, strict=True))
    state = {f"{n}.{k}": rng.uniform(0.1, 2, c).astype(np.float32) for n, c in sizes.items()
             for k in ("running_mean", "running_var")}
    v = {n: rng.choice((-1.0, 1.0), c) for n, c in sizes.items()}
    mean = shift_statistics(state, layout, "mean", 0.3, v)
    std = shift_statistics(state, layout, "std", 0.3, v)
    for n in layout.names:
        np.testing.assert_allclose(mean[f"{n}.running_mean"], (1 + 0.3 * v[n]) * state[f"{n}.running_mean"], 1e-6)
        np.testing.assert_allclose(np.sqrt(std[f"{n}.running_var"] + 1e-5),
                                   (1 + 0.3 * v[n]) * np.sqrt(state[f"{n}.running_var"] + 1e-5), 1e-5)
        np.testing.assert_array_equal(std[f"{n}.running_mean"], state[f"{n}.running_mean"])


def test_apart_recipes_follow_the_paper_and_budgets():
    r = RECIPES["paper-cifar100-wrn-apart"]
    assert (r.arch, r.norms, r.epochs, r.batch_size, r.lr, r.weight_decay, r.milestones) == \
        ("wrn40_2", "bn", 200, 128, 0.1, 5e-4, (0.5, 0.75))
    assert (r.apart_eps, r.apart_ratio, r.apart_groups, r.sam_rho) == (0.1, 1.0, 16, 0.1)
    assert RECIPES["paper-cifar10-preact-sam"].sam_rho == 0.05
    assert RECIPES["paper-cifar10-preact-standard-2x"].epochs == 400
    quick = {k: RECIPES[f"quick-{k}"] for k in ("standard", "standard-2x", "sam", "apart", "apart-sam")}
    assert quick["standard-2x"].epochs == 2 * quick["standard"].epochs == 2 * quick["apart"].epochs
    assert {r.method for r in quick.values()} == {"clean", "sam", "apart", "apart-sam"}
    with pytest.raises(ValueError, match="apart_ratio"):
        get_recipe("quick-apart", apart_ratio=0.0)
    assert get_recipe("quick-apart").to_dict()["evaluation"]["eval_attack"] is None
    with pytest.raises(ValueError, match="'sync_bn' is not supported with method 'apart'"):
        get_recipe("quick-apart", sync_bn=True)
    assert get_recipe("quick-standard", sync_bn=True).sync_bn
