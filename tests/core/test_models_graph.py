import pytest

from rna_core import models
from rna_core.models.graph import Conv, Norm, walk


@pytest.mark.parametrize("name, slots, extra", [
    ("resnet18", 20, {}), ("preact_resnet18", 17, {}), ("wrn34_10", 30, {}), ("wrn40_2", 36, {}),
    ("resnet50", 53, {}), ("small_cnn", 4, {}), ("resnet18_imagenet", 20, {}),
])
def test_slot_counts(name, slots, extra):
    g = models.create(name, num_classes=10, **extra)
    assert g.num_slots == slots
    used = sorted(n.slot for _, n in walk(g.root) if isinstance(n, Norm) and n.slot is not None)
    assert used == list(range(slots))


def test_wrn_has_one_plain_final_bn():
    g = models.create("wrn34_10")
    plain = [name for name, n in walk(g.root) if isinstance(n, Norm) and n.slot is None]
    assert plain == ["norm"]


def test_input_channels_and_errors():
    g = models.create("resnet18", in_channels=1, width=8)
    first = next(n for _, n in walk(g.root) if isinstance(n, Conv))
    assert (first.cin, first.cout) == (1, 8)
    with pytest.raises(ValueError, match="unknown architecture"):
        models.create("vgg")
    with pytest.raises(ValueError, match="wrn34_10"):
        models.create("wrn34_10", width=3)
