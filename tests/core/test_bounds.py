"""CTRW's bound math and sigma constraints against independent float64 computations."""

import math

import numpy as np
import pytest

from rna_core import bounds
from rna_core.constraints import authors_rule, constrain, project


def test_scaled_bounds_are_the_papers_cifar_bounds_per_entry():
    """A random weight of the CIFAR input's size gets the paper's [1000, 2400]; the bundled recipe's 784 entries the
    quick-ctrw recipe's bounds; an empty weight is refused."""
    from rna_core.recipes import get_recipe

    assert bounds.scaled_sigma_bounds(3 * 32 * 32) == pytest.approx((1000.0, 2400.0))
    quick = get_recipe("quick-ctrw")
    assert bounds.scaled_sigma_bounds(784) == pytest.approx((quick.sigma_lower, quick.sigma_upper))
    with pytest.raises(ValueError, match="at least one entry"):
        bounds.scaled_sigma_bounds(0)


def test_user_weight_shapes_and_refusals():
    from rna_core.models.ctrw import user_weight_shape

    assert user_weight_shape("input", None, None, (1, 28, 28)) == (1, 28, 28)
    assert user_weight_shape("conv1", "conv", None, [3, 32, 32]) == (3, 32, 32)
    assert user_weight_shape("fc", "linear", 512, None) == (512,)
    with pytest.raises(ValueError, match="give input_shape"):
        user_weight_shape("conv1", "conv", None, None)
    with pytest.raises(ValueError, match="is a BatchNorm2d"):
        user_weight_shape("bn1", "BatchNorm2d", None, None)


def test_normal_cdf_matches_known_values():
    assert bounds.normal_cdf(0.0) == 0.5
    assert bounds.normal_cdf(1.959963984540054) == pytest.approx(0.975, abs=1e-12)
    np.testing.assert_allclose(bounds.normal_cdf(np.array([-1.0, 1.0])).sum(), 1.0, rtol=1e-14)


@pytest.mark.parametrize("seed", range(5))
def test_lemma1_lower_bound_is_eq10(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(10, 200))
    mu = rng.uniform(0.5, 1.5, m)
    sigma = rng.uniform(0.1, 1.0, m)
    w1, w2 = mu + sigma * rng.standard_normal(m), mu + sigma * rng.standard_normal(m)
    eps_r, alpha = 0.05, -1e-3
    # Eq. 10 written out with explicit loops
    eps_prime = eps_r * math.sqrt(sum(v * v for v in w1)) * math.sqrt(sum(v * v for v in w2))
    expected = (eps_prime - sum(mu)) / (alpha * sum(abs(v) for v in w1))
    got = bounds.lemma1_lower_bound(eps_r, mu, w1, w2, alpha)
    assert got == pytest.approx(expected, rel=1e-12) and got > 0


def test_lemma1_rejects_broken_assumptions():
    mu = np.ones(4)
    with pytest.raises(ValueError, match="alpha < 0"):
        bounds.lemma1_lower_bound(0.1, mu, mu, mu, 1e-3)
    with pytest.raises(ValueError, match="sum\\(mu\\)"):
        bounds.lemma1_lower_bound(2.0, mu, mu, mu, -1e-3)


def test_simplified_bound_is_near_eq10_for_the_papers_alpha():
    """Sec. 2.3: with alpha = -1e-3, Eq. 10 lies below 1/|alpha| = 1000 (the paper's A)."""
    rng = np.random.default_rng(0)
    mu = np.ones(3072)
    w1, w2 = mu + 0.3 * rng.standard_normal(3072), mu + 0.3 * rng.standard_normal(3072)
    a = bounds.lemma1_lower_bound(0.05, mu, w1, w2, -1e-3)
    assert bounds.simplified_lower_bound(-1e-3) == 1000.0
    assert 0 < a < 1000.0


@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 0), (1, 0)])
def test_propagate_conv_is_eq12(stride, padding):
    rng = np.random.default_rng(1)
    mu, sigma = rng.uniform(0.5, 1.5, (2, 5, 5)), rng.uniform(0.1, 1.0, (2, 5, 5))
    w = rng.standard_normal((3, 2, 3, 3))
    m_out, s_out = bounds.propagate_conv(mu, sigma, w, stride, padding)
    mp, sp = (np.pad(a, ((0, 0), (padding, padding), (padding, padding))) for a in (mu, sigma))
    for o in range(3):
        for i in range(m_out.shape[1]):
            for j in range(m_out.shape[2]):
                win = (slice(None), slice(i * stride, i * stride + 3), slice(j * stride, j * stride + 3))
                assert m_out[o, i, j] == pytest.approx((mp[win] * w[o]).sum(), rel=1e-12)
                assert s_out[o, i, j] == pytest.approx(math.sqrt(((sp[win] * w[o]) ** 2).sum()), rel=1e-12)
    # and it is the distribution a Monte Carlo convolution of random maps produces
    draws = mu + sigma * rng.standard_normal((4000, 2, 5, 5))
    outs = np.stack([bounds.propagate_conv(d, np.zeros_like(d), w, stride, padding)[0] for d in draws[:4000]])
    np.testing.assert_allclose(outs.std(0), s_out, rtol=0.08)
    # homogeneous of degree 1 in sigma, the "sigma proportional to sigma'" of Sec. 2.2
    np.testing.assert_allclose(bounds.propagate_conv(mu, 3 * sigma, w, stride, padding)[1], 3 * s_out)


def test_lemma2_upper_bound_guarantees_its_probability():
    rng = np.random.default_rng(2)
    x, w = rng.uniform(0, 1, (5, 16)), rng.standard_normal((4, 16))
    eps_y, beta = 0.5, 1e-2
    bound = bounds.lemma2_upper_bound(eps_y, x, w, beta)
    assert bound == pytest.approx(eps_y / (beta * np.abs(w[None] * x[:, None]).max()), rel=1e-12)
    # any sigma' with that sum: every output difference satisfies P(Y1 - Y2 < eps_y) >= F(sqrt(2) beta / 2)
    sigma = rng.dirichlet(np.ones(16)) * bound
    std = np.sqrt(2 * ((w[None] * x[:, None] * sigma) ** 2).sum(-1))
    assert (bounds.normal_cdf(eps_y / std) >= bounds.normal_cdf(math.sqrt(2) * beta / 2)).all()
    with pytest.raises(ValueError, match="last-layer"):
        bounds.lemma2_upper_bound(eps_y, x, w[:, :3], beta)


def test_upper_bound_for_sigma_scales_with_the_propagation():
    sigma = np.full((1, 4, 4), 0.5)
    _, sp = bounds.propagate_conv(np.ones_like(sigma), sigma, np.ones((1, 1, 3, 3)), 1, 1)
    b = bounds.upper_bound_for_sigma(10.0, sigma, sp)
    _, sp_at_b = bounds.propagate_conv(np.ones_like(sigma), sigma * b / sigma.sum(), np.ones((1, 1, 3, 3)), 1, 1)
    assert sp_at_b.sum() == pytest.approx(10.0, rel=1e-12)


def test_positive_sample_ratio_against_a_direct_count():
    mu, sigma = np.ones(50), np.full(50, 2.0)
    got = bounds.positive_sample_ratio(mu, sigma, 0.2, samples=3000, rng=np.random.default_rng(3), chunk=700)
    rng = np.random.default_rng(3)
    count, chunks = 0, [700, 700, 700, 700, 200]
    for n in chunks:
        w1, w2 = mu + sigma * rng.standard_normal((n, 50)), mu + sigma * rng.standard_normal((n, 50))
        count += sum(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) <= 0.2 for a, b in zip(w1, w2, strict=True))
    assert got["positive"] == count and got["ratio"] == count / 3000
    # no randomness: every pair is identical, cos = 1
    assert bounds.positive_sample_ratio(mu, np.zeros(50), 0.2, samples=100)["positive"] == 0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("lower, upper", [(5.0, 8.0), (30.0, 40.0), (0.0, 2.0), (12.0, 12.0)])
def test_projection_is_feasible_idempotent_and_nearest(seed, lower, upper):
    rng = np.random.default_rng(seed)
    sigma = rng.normal(0.5, 1.0, 20)
    p = project(sigma, lower, upper)
    assert (p >= 0).all() and lower - 1e-9 <= p.sum() <= upper + 1e-9
    np.testing.assert_allclose(project(p, lower, upper), p, atol=1e-12)
    best = np.linalg.norm(p - sigma)
    for _ in range(300):  # random feasible points are never closer
        q = rng.dirichlet(np.ones(20) * rng.uniform(0.2, 5)) * rng.uniform(lower, upper)
        assert np.linalg.norm(q - sigma) >= best - 1e-9
    for t in (0.9, 0.99):  # nor are points between p and a feasible point on the far side
        q = rng.dirichlet(np.ones(20)) * rng.uniform(lower, upper)
        assert np.linalg.norm(t * p + (1 - t) * q - sigma) >= best - 1e-9


def test_authors_rule_raises_the_low_entries_by_the_shortfall():
    sigma = np.array([0.1, 0.5, 2.0, 0.3])
    out = authors_rule(sigma, lower=4.0)  # floor 1.0, shortfall 0.9
    np.testing.assert_allclose(out, [1.0, 1.4, 2.0, 1.2])
    assert authors_rule(np.full(4, 2.0), 4.0) is not None
    np.testing.assert_array_equal(authors_rule(np.full(4, 2.0), 4.0), np.full(4, 2.0))
    big = np.full(4, 10.0)
    assert constrain(big, "authors", 4.0, 8.0).sum() == 40.0, "the authors' rule never enforces the upper bound"
    assert constrain(big, "project", 4.0, 8.0).sum() == pytest.approx(8.0)
    np.testing.assert_array_equal(constrain(big, "fixed", 4.0, 8.0, 6.0), np.full(4, 1.5))
    with pytest.raises(ValueError, match="unknown sigma constraint"):
        constrain(big, "clip", 4.0, 8.0)


@pytest.mark.parametrize("seed", range(6))
def test_authors_rule_always_reaches_the_lower_bound(seed):
    """Every entry below A / m ends at >= A / m, so sum >= A (float64: exactly; float32 rounding aside)."""
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(-1, 3, 50)
    out = authors_rule(sigma, lower=60.0)
    assert out.min() >= 60.0 / 50 - 1e-12 and out.sum() >= 60.0 - 1e-9
