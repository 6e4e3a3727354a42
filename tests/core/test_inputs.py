"""Inputs as users hold them reach evaluation through one conversion (``rna_core.data.inputs``)."""

import numpy as np
import pytest

from rna_core.data import load_bundled
from rna_core.data.inputs import ACCEPTED, as_examples, count_batches, first_images, iterate, like


def _batches(source, size):
    return [(x.copy(), y.copy()) for x, y in iterate(source, size)]


def test_every_accepted_form_gives_the_data_sets_batches():
    data = load_bundled("test").subset(10)
    want = _batches(data, 4)
    floats = data.x.astype(np.float32) / 255

    class MapStyle:  # ds[i] -> (image, label), like torch's TensorDataset
        def __len__(self):
            return len(data)

        def __getitem__(self, i):
            return floats[i], data.y[i]

    forms = {"pair-uint8": (data.x, data.y), "pair-float": (floats, data.y), "map-style": MapStyle(),
             "one-shot": iter([(data.x[:4], data.y[:4]), (data.x[4:8], data.y[4:8]), (data.x[8:], data.y[8:])]),
             "re-iterable": [(floats[:4], data.y[:4]), (floats[4:8], data.y[4:8]), (floats[8:], data.y[8:])]}
    for name, form in forms.items():
        got = _batches(as_examples(form), 4)
        assert len(got) == len(want), name
        for (gx, gy), (wx, wy) in zip(got, want, strict=True):
            assert gx.dtype == np.float32 and gy.dtype == np.int64, name
            np.testing.assert_allclose(gx, wx, atol=1e-7, err_msg=name)
            np.testing.assert_array_equal(gy, wy, err_msg=name)
    assert count_batches(as_examples(data), 4) == 3 and first_images(as_examples(forms["pair-float"]), 2).shape[0] == 2
    assert like(floats, floats) is floats


@pytest.mark.parametrize("bad, message", [
    ({"x": 1}, "cannot read examples from a dict"), (42, "cannot read examples from a int"),
    ((np.zeros((3, 28, 28)), np.zeros(3)), "N x C x H x W"), ((np.zeros((3, 1, 2, 2)), np.zeros(2)), "labels of shape"),
    ((np.zeros((2, 1, 2, 2), np.int32), np.zeros(2)), "uint8 or float"), (iter([]), "empty"),
    ([("a", "b")], "expected a numpy array"),
], ids=["dict", "int", "3-d", "labels", "int32", "empty", "strings"])
def test_other_forms_are_refused_naming_the_accepted_ones(bad, message):
    with pytest.raises((TypeError, ValueError), match=message):
        _batches(as_examples(bad), 4)
    assert "DataLoader" in ACCEPTED
