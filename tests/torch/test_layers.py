"""Every normalization layer against the float64 numpy reference (train, eval, running statistics)."""

import numpy as np
import pytest
import torch

from rna_core.backends.torch.layers import MOMENTUM, make_norm
from rna_core.norms import normalize, parse_norms

SPECS = ["bn", "bn/na", "bgn:2", "bgn@4", "bgn:1", "in", "in/na", "gn:2", "gn@2", "ln", "ln/na"]


def _layer(spec_text: str, channels: int, seed: int):
    spec = parse_norms(spec_text)[0]
    layer = make_norm(spec, channels).double()
    rng = np.random.default_rng(seed)
    if spec.affine:
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(rng.normal(1, 0.3, channels)))
            layer.bias.copy_(torch.from_numpy(rng.normal(0, 0.3, channels)))
    return spec, layer


@pytest.mark.parametrize("spec_text", SPECS)
def test_train_eval_and_running_stats(spec_text):
    spec, layer = _layer(spec_text, 8, 0)
    rng = np.random.default_rng(1)
    w = layer.weight.detach().numpy() if spec.affine else None
    b = layer.bias.detach().numpy() if spec.affine else None
    rm = rv = None
    layer.train()
    for step in range(3):
        x = rng.normal(0.5 * step, 1 + step, (4, 8, 5, 3))
        y = layer(torch.from_numpy(x)).detach().numpy()
        ref, rm, rv = normalize(x, spec, w, b, rm, rv, training=True, momentum=MOMENTUM)
        np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10)
        if spec.uses_batch_statistics:
            np.testing.assert_allclose(layer.running_mean.numpy(), rm, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(layer.running_var.numpy(), rv, rtol=1e-12, atol=1e-12)
    layer.eval()
    x = rng.normal(-1, 2, (3, 8, 4, 4))
    ref, _, _ = normalize(x, spec, w, b, rm, rv, training=False)
    np.testing.assert_allclose(layer(torch.from_numpy(x)).detach().numpy(), ref, rtol=1e-10, atol=1e-10)


def test_bgn_with_one_channel_per_group_is_bn():
    _, bgn = _layer("bgn@1", 6, 3)
    _, bn = _layer("bn", 6, 3)
    x = torch.randn(5, 6, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(bgn(x), bn(x))
    torch.testing.assert_close(bgn.running_var, bn.running_var)


def test_bgn_float32_matches_reference():
    spec, layer = _layer("bgn:4", 16, 2)
    layer = layer.float()
    x = np.random.default_rng(0).normal(3, 2, (8, 16, 6, 6)).astype(np.float32)
    ref, rm, rv = normalize(x, spec, layer.weight.detach().numpy(), layer.bias.detach().numpy())
    np.testing.assert_allclose(layer(torch.from_numpy(x)).detach().numpy(), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.running_var.numpy(), rv, rtol=1e-5)
