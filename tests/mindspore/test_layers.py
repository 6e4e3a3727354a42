"""MindSpore normalization layers and RNA slots against the float64 numpy reference, in both modes."""

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from rna_core.backends.mindspore.layers import MOMENTUM, NormSlot, make_norm
from rna_core.norms import parse_norms
from rna_core.reference import normalize

SPECS = ["bn", "bn/na", "bgn:2", "bgn@4", "in", "in/na", "gn:2", "ln"]


@pytest.fixture(params=["pynative", "graph"])
def mode(request):
    return request.param


def _call(cell, mode, *args):
    if mode == "pynative":
        return cell(*args)

    @ms.jit
    def run(*inputs):
        return cell(*inputs)

    return run(*args)


@pytest.mark.parametrize("spec_text", SPECS)
def test_layer_matches_reference(spec_text, mode):
    spec = parse_norms(spec_text)[0]
    layer = make_norm(spec, 8)
    rng = np.random.default_rng(0)
    w = b = None
    if spec.affine:
        w, b = rng.normal(1, 0.3, 8).astype(np.float32), rng.normal(0, 0.3, 8).astype(np.float32)
        layer.weight.set_data(Tensor(w))
        layer.bias.set_data(Tensor(b))
    rm = rv = None
    layer.set_train(True)
    for step in range(2):
        x = rng.normal(0.5 * step, 1 + step, (4, 8, 5, 3)).astype(np.float32)
        y = _call(layer, mode, Tensor(x)).asnumpy()
        ref, rm, rv = normalize(x, spec, w, b, rm, rv, training=True, momentum=MOMENTUM)
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
        if spec.uses_batch_statistics:
            np.testing.assert_allclose(layer.running_mean.asnumpy(), rm, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(layer.running_var.asnumpy(), rv, rtol=1e-5, atol=1e-6)
    layer.set_train(False)
    x = rng.normal(-1, 2, (3, 8, 4, 4)).astype(np.float32)
    ref, _, _ = normalize(x, spec, w, b, rm, rv, training=False)
    np.testing.assert_allclose(_call(layer, mode, Tensor(x)).asnumpy(), ref, rtol=1e-4, atol=1e-4)


def test_slot_selects_by_tensor_path(mode):
    slot = NormSlot(6, parse_norms("bn+in+ln"), 1)
    slot.set_train(False)
    x = np.random.default_rng(1).normal(2, 3, (2, 6, 4, 4)).astype(np.float32)
    for k, spec in enumerate(parse_norms("bn+in+ln")):
        draw = ms.mutable((Tensor(np.array([0, k, 0], np.int32)), Tensor(np.zeros(1, np.float32))))
        ref, _, _ = normalize(x, spec, training=False)
        np.testing.assert_allclose(_call(slot, mode, Tensor(x), draw).asnumpy(), ref, rtol=1e-4, atol=1e-4)
