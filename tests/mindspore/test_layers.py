"""MindSpore normalization layers and RNA slots against the float64 numpy reference, in both modes."""

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from rna_core.backends.mindspore.layers import MOMENTUM, DrawState, NormSlot, make_norm
from rna_core.norms import normalize, parse_norms

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


def _state(slots: int, mode: str) -> DrawState:
    state = DrawState(slots, 0, 0)
    state.compiled = mode == "graph"
    return state


def test_slot_selects_by_tensor_path(mode):
    state = _state(3, mode)
    slot = NormSlot(6, parse_norms("bn+in+ln"), 1, state)
    slot.set_train(False)
    x = np.random.default_rng(1).normal(2, 3, (2, 6, 4, 4)).astype(np.float32)
    for k, spec in enumerate(parse_norms("bn+in+ln")):
        ref, _, _ = normalize(x, spec, training=False)
        state.write(np.array([0, k, 0]), None, None)
        np.testing.assert_allclose(_call(slot, mode, Tensor(x)).asnumpy(), ref, rtol=1e-4, atol=1e-4)


def test_slot_switch_trains_only_the_selected_candidate_with_one_graph(mode):
    """Through the switch, in training mode: only the selected candidate gets a gradient and updates its running
    statistics, the others get zero gradient and keep theirs; GRAPH_MODE compiles one graph for every path."""
    specs = parse_norms("bn+bgn:2+gn:3")
    state = _state(1, mode)
    slot = NormSlot(6, specs, 0, state)
    slot.set_train(True)
    params = slot.trainable_params()

    def loss(x):
        return (slot(x) ** 2 * Tensor(np.arange(6, dtype=np.float32).reshape(1, 6, 1, 1))).sum()

    grad = ms.value_and_grad(loss, None, params)
    grad = ms.jit(grad) if mode == "graph" else grad
    x = np.random.default_rng(2).normal(1, 2, (4, 6, 3, 3)).astype(np.float32)
    compiled = None
    for k, key in enumerate(slot.keys):
        before = {n: p.asnumpy().copy() for n, p in slot.parameters_and_names()}
        state.write(np.array([k]), None, None)
        _, grads = grad(Tensor(x))
        if mode == "graph":
            graphs = len(ms.graph.api.ms_compile_cache)
            assert compiled in (None, graphs), "a new path compiled a new graph"
            compiled = graphs
        for p, g in zip(params, grads, strict=True):
            assert (np.abs(g.asnumpy()).sum() > 0) == p.name.startswith(key + "."), p.name
        for name, p in slot.parameters_and_names():
            if "running" in name:
                moved = not np.array_equal(p.asnumpy(), before[name])
                assert moved == name.startswith(key + "."), name
