"""CTRW's bounds on sum(sigma) (Zhang et al., NeurIPS 2023, Sec. 2), in float64 numpy.

A random weight W = mu + sigma * delta, delta ~ N(0, 1) elementwise (Eq. 4), is trained with
sum(sigma) kept in [A, B] (Eq. 5): A from Lemma 1 (low gradient similarity between two draws), B from
Lemma 2 (two draws give nearly the same output).

Readings where the paper is ambiguous (each tested in tests/core/test_bounds.py):
- Lemma 1 needs alpha < 0; Sec. 4.1 writes alpha = 1e-3, which we read as |alpha| (alpha = -1e-3), the
  only reading under which Eq. 10 is positive; then A is about 1 / |alpha| = 1000, the paper's estimate.
- Eq. 13 divides by ``x^{n-1} . W^n``. A dot product can vanish and then bounds nothing; we use the largest
  magnitude of the elementwise products |W^n_ki x_i| over outputs k and features i, which makes Eq. 13 a
  sufficient condition: Y1_k - Y2_k = sum_i W_ki x_i sigma'_i (delta1_i - delta2_i) ~ N(0, 2 ||a_k sigma'||^2)
  with a_k = W_k * x, and ||a_k sigma'||_2 <= max|a_k| sum(sigma') <= eps_y / beta gives
  P(Y1_k - Y2_k < eps_y) >= F(eps_y / (sqrt 2 ||a_k sigma'||)) >= F(sqrt(2) beta / 2).
- "sigma is proportional to sigma'" (after Eq. 12): the propagation is homogeneous of degree 1 in sigma,
  so the bound on sum(sigma') maps to sum(sigma) <= B' sum(sigma) / sum(sigma') exactly along sigma's direction.
"""

from __future__ import annotations

import math

import numpy as np

# The paper's CIFAR bounds at position 0 (A = 1 / |alpha| = 1000, B ~ 2400 from Lemma 2, over 3 x 32 x 32 entries)
# per entry: the rule by which the bundled quick-ctrw recipe and a user's random weight scale them to their size.
CIFAR_BOUNDS_PER_ENTRY = (1000.0 / 3072, 2400.0 / 3072)


def scaled_sigma_bounds(entries: int) -> tuple[float, float]:
    """[A, B] on sum(sigma) for a random weight of ``entries`` entries: ``CIFAR_BOUNDS_PER_ENTRY`` times its size."""
    if entries < 1:
        raise ValueError(f"a random weight needs at least one entry, got {entries}")
    return CIFAR_BOUNDS_PER_ENTRY[0] * entries, CIFAR_BOUNDS_PER_ENTRY[1] * entries


def normal_cdf(z: float | np.ndarray) -> float | np.ndarray:
    """F(z) = (1 + erf(z / sqrt 2)) / 2, the standard normal CDF."""
    erf = np.vectorize(math.erf, otypes=[np.float64])
    out = 0.5 * (1.0 + erf(np.asarray(z, np.float64) / math.sqrt(2.0)))
    return float(out) if out.ndim == 0 else out


def lemma1_lower_bound(eps_r: float, mu: np.ndarray, w1: np.ndarray, w2: np.ndarray, alpha: float,
                       p: float = 2) -> float:
    """Eq. 10: sum(sigma) >= (eps'_r - sum(mu)) / (alpha sum|W[1]|), eps'_r = eps_r ||W[1]||_p ||W[2]||_p;
    under it P(cos(W[1], W[2]) <= eps_r) > F(alpha). Requires alpha < 0 and sum(mu) > eps'_r (Lemma 1's
    sum(mu) >> 0), else the bound is not positive and a ValueError says which assumption failed."""
    if not alpha < 0:
        raise ValueError(f"Lemma 1 needs alpha < 0, got {alpha} (the paper's 1e-3 reads as alpha = -1e-3)")
    mu, w1, w2 = (np.asarray(a, np.float64).ravel() for a in (mu, w1, w2))
    eps_prime = eps_r * np.linalg.norm(w1, p) * np.linalg.norm(w2, p)
    if not mu.sum() > eps_prime:
        raise ValueError(f"Lemma 1 assumes sum(mu) >> eps'_r; got sum(mu) = {mu.sum():.4g}, eps'_r = {eps_prime:.4g}")
    return float((eps_prime - mu.sum()) / (alpha * np.abs(w1).sum()))


def simplified_lower_bound(alpha: float) -> float:
    """Sec. 2.3: Eq. 10 is with high probability below 1 / |alpha|; CTRW uses A = 1 / |alpha|."""
    if alpha == 0:
        raise ValueError("alpha must be nonzero")
    return 1.0 / abs(alpha)


def propagate_conv(mu: np.ndarray, sigma: np.ndarray, weight: np.ndarray, stride: int = 1,
                   padding: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 11-12: a map of independent N(mu, sigma^2) entries (C, H, W) through a convolution with ``weight``
    (C_out, C, k, k) gives N(sum mu * W, sum (sigma * W)^2) at every output position: returns (mu', sigma')."""
    mu, sigma, weight = (np.asarray(a, np.float64) for a in (mu, sigma, weight))
    if mu.shape != sigma.shape or mu.ndim != 3 or weight.ndim != 4 or weight.shape[1] != mu.shape[0]:
        raise ValueError(f"need mu, sigma of shape (C, H, W) and weight (C_out, C, k, k); got {mu.shape}, "
                         f"{sigma.shape}, {weight.shape}")
    k = weight.shape[2]

    def conv(a: np.ndarray, w: np.ndarray) -> np.ndarray:
        a = np.pad(a, ((0, 0), (padding, padding), (padding, padding)))
        h = (a.shape[1] - k) // stride + 1
        wd = (a.shape[2] - k) // stride + 1
        cols = np.lib.stride_tricks.sliding_window_view(a, (k, k), axis=(1, 2))[:, ::stride, ::stride][:, :h, :wd]
        return np.einsum("chwij,ocij->ohw", cols, w)

    return conv(mu, weight), np.sqrt(conv(sigma**2, weight**2))


def lemma2_upper_bound(eps_y: float, features: np.ndarray, last_weight: np.ndarray, beta: float) -> float:
    """Eq. 13 (see the module docstring for the reading): the bound on sum(sigma') at the last layer's input,
    eps_y / (beta max_{n,k,i} |W^n_ki x^{n-1}_ni|), for features (N, D) and last-layer weights (K, D); under it
    P(Y1 - Y2 < eps_y) >= F(sqrt(2) beta / 2) for every output of every given example."""
    x = np.asarray(features, np.float64).reshape(len(features), -1)
    w = np.asarray(last_weight, np.float64)
    if w.ndim != 2 or w.shape[1] != x.shape[1]:
        raise ValueError(f"last-layer weights must be (K, {x.shape[1]}), got {w.shape}")
    if not (eps_y > 0 and beta > 0):
        raise ValueError(f"eps_y and beta must be > 0, got {eps_y}, {beta}")
    scale = np.abs(w[None, :, :] * x[:, None, :]).max()
    return float(eps_y / (beta * scale))


def upper_bound_for_sigma(bound_prime: float, sigma: np.ndarray, sigma_prime: np.ndarray) -> float:
    """B on sum(sigma) from a bound on sum(sigma'), sigma' the propagation of sigma (degree-1 homogeneous)."""
    return float(bound_prime * np.sum(sigma, dtype=np.float64) / np.sum(sigma_prime, dtype=np.float64))


def positive_sample_ratio(mu: np.ndarray, sigma: np.ndarray, eps_r: float, samples: int = 100_000,
                          rng: np.random.Generator | None = None, chunk: int = 1000) -> dict[str, float]:
    """Monte Carlo estimate of P(cos(W[1], W[2]) <= eps_r) for independent draws W = mu + sigma delta (Table 6):
    the count of positive samples out of ``samples`` pairs, their ratio, and the smallest cosine seen."""
    rng = rng or np.random.default_rng(0)
    mu, sigma = (np.asarray(a, np.float64).ravel() for a in (mu, sigma))
    positive, smallest, done = 0, math.inf, 0
    while done < samples:
        n = min(chunk, samples - done)
        w1 = mu + sigma * rng.standard_normal((n, mu.size))
        w2 = mu + sigma * rng.standard_normal((n, mu.size))
        cos = (w1 * w2).sum(1) / (np.linalg.norm(w1, axis=1) * np.linalg.norm(w2, axis=1))
        positive += int((cos <= eps_r).sum())
        smallest = min(smallest, float(cos.min()))
        done += n
    return {"positive": positive, "samples": samples, "ratio": positive / samples, "min_cos": smallest}
