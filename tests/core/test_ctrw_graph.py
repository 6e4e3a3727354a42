"""Placing CTRW random weights in architecture graphs."""

import pytest

from rna_core import models
from rna_core.models.ctrw import add_random_weight, output_shape, positions, random_weights
from rna_core.models.graph import RandomWeight


@pytest.mark.parametrize("position, shape", [(0, (3, 32, 32)), (1, (8, 32, 32)), (2, (8, 32, 32)), (3, (16, 16, 16)),
                                             (4, (32, 8, 8)), (5, (64, 4, 4))])
def test_resnet18_positions_match_the_authors_shapes(position, shape):
    """The authors' shapes for width 64 are (3,32,32), (64,32,32), (64,32,32), (128,16,16), (256,8,8), (512,4,4)."""
    g = add_random_weight(models.create("resnet18", width=8), position, "in", (32, 32))
    (name, rw), = random_weights(g).items()
    assert name == "ctrw" and rw.shape == shape and g.noise_size == rw.size
    names = [n for n, _ in g.root.children]
    before = ["normalize", "relu", "layer1", "layer2", "layer3", "layer4"][position]
    assert names[names.index("ctrw") - 1] == before
    assert output_shape(g.root, (3, 32, 32)) == (10,)


def test_variants_of_the_first_convolution():
    base = models.create("resnet18", width=8, in_channels=1)
    both = add_random_weight(base, 0, "both", (28, 28))
    rws = random_weights(both)
    assert {k: v.shape for k, v in rws.items()} == {"ctrw": (1, 28, 28), "ctrw_out": (8, 28, 28)}
    assert sorted(v.offset for v in rws.values()) == [0, 784] and both.noise_size == 784 + 8 * 784
    names = [n for n, _ in both.root.children]
    assert names[:4] == ["normalize", "ctrw", "conv1", "ctrw_out"]
    filt = random_weights(add_random_weight(base, 0, "filter", (28, 28)))
    assert {k: v.shape for k, v in filt.items()} == {"conv1.random": (8, 1, 3, 3)}
    assert all(isinstance(v, RandomWeight) for v in filt.values())


def test_errors_name_the_problem():
    g = models.create("resnet18", width=8)
    assert len(positions(g)) == 6
    with pytest.raises(ValueError, match="position must be in 0..5"):
        add_random_weight(g, 6)
    with pytest.raises(ValueError, match="needs position 0"):
        add_random_weight(g, 2, "filter")
    with pytest.raises(ValueError, match="variant must be one of"):
        add_random_weight(g, 0, "kernel")
    with pytest.raises(ValueError, match="already holds"):
        add_random_weight(add_random_weight(g, 0), 1)
