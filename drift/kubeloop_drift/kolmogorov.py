"""P(D_n >= x) for the one-sample two-sided Kolmogorov statistic, for large n, without scipy.stats.

For n > 100,000 ``scipy.stats.kstwo.sf`` (Simard & L'Ecuyer's choice of methods) uses only:
trivial bounds, Ruben-Gambino near the ends, twice Smirnov's one-sided probability in the tail,
and the Pelz-Good expansion elsewhere. This module follows that choice and ports the Pelz-Good
code of ``scipy.stats._ksstats`` (BSD-3-Clause), so that a large-sample KS test does not import
scipy.stats (about a second). Smirnov's exact one-sided sum is evaluated vectorised in log
space: ``scipy.special.smirnov`` loops over its n terms and takes about a second at n = 500,000.
"""

from __future__ import annotations

import math

import numpy as np

LARGE_SIZE = 100_000
"""Above this n, scipy's kstwo never uses its (costlier) Durbin-matrix method: this module applies."""

_PI_SQUARED, _PI_FOUR, _PI_SIX = math.pi**2, math.pi**4, math.pi**6
_SQRT_2PI = math.sqrt(2 * math.pi)
_SQRT3 = math.sqrt(3)
_MIN_LOG = -708


def kolmogorov_sf(n: int, x: float) -> float:
    """P(D_n >= x), as scipy.stats.kstwo.sf(x, n), for n > LARGE_SIZE."""
    if n <= LARGE_SIZE:
        raise ValueError(f"n = {n} is not above {LARGE_SIZE}: use scipy.stats.kstwo")
    if x >= 1.0:
        return 0.0
    if x <= 0.0:
        return 1.0
    t = n * x
    if t <= 1.0:  # Ruben-Gambino
        if t <= 0.5:
            return 1.0
        below = math.exp(math.lgamma(n + 1) - n * math.log(n) + n * math.log(2 * t - 1))
        return _clip(1.0 - below)
    if t >= n - 1:  # Ruben-Gambino
        return _clip(2 * (1.0 - x) ** n)
    n_x_squared = t * x
    if x >= 0.5 or 2.2 <= n_x_squared < 370.0:
        return _clip(2 * smirnov_sf(n, x))
    if n_x_squared >= 370.0:
        return 0.0
    return _clip(1.0 - pelz_good_cdf(n, x))


def smirnov_sf(n: int, x: float, chunk: int = 1 << 20) -> float:
    """P(D+_n >= x), exactly: x * sum over j <= n(1-x) of C(n, j) (1 - x - j/n)^(n-j) (x + j/n)^(j-1)
    (Birnbaum and Tingey, 1951), the terms summed as logarithms, ``chunk`` of them at a time."""
    from scipy.special import gammaln  # here: scipy.special loads only for large-sample KS

    largest = math.floor(n * (1.0 - x))
    log_n_factorial = math.lgamma(n + 1)
    peak, scaled_sum = -math.inf, 0.0
    for start in range(0, largest + 1, chunk):
        j = np.arange(start, min(start + chunk, largest + 1), dtype=np.float64)
        with np.errstate(divide="ignore"):  # a last term with 1 - x - j/n = 0 is 0
            log_terms = (
                log_n_factorial
                - gammaln(j + 1)
                - gammaln(n - j + 1)
                + (n - j) * np.log((n - j - n * x) / n)
                + (j - 1) * np.log(x + j / n)
            )
        chunk_peak = float(log_terms.max())
        if chunk_peak == -math.inf:
            continue
        if chunk_peak > peak:
            scaled_sum *= math.exp(peak - chunk_peak)
            peak = chunk_peak
        scaled_sum += float(np.exp(log_terms - peak).sum())
    return x * scaled_sum * math.exp(peak) if scaled_sum > 0 else 0.0


def pelz_good_cdf(n: int, x: float) -> float:
    """Pelz and Good's (1976) expansion of P(D_n <= x): K0(z) + K1(z)/sqrt(n) + K2(z)/n + K3(z)/n^1.5
    with z = x sqrt(n), each K written with Jacobi theta functions to suit small z."""
    z = math.sqrt(n) * x
    z2, z3, z4, z6 = z**2, z**3, z**4, z**6
    q_log = -_PI_SQUARED / 8 / z2
    if q_log < _MIN_LOG:
        return 0.0
    q = math.exp(q_log)
    k1a, k1b = -z2, _PI_SQUARED / 4
    k2a, k2b, k2c = 6 * z6 + 2 * z4, (2 * z4 - 5 * z2) * _PI_SQUARED / 4, _PI_FOUR * (1 - 2 * z2) / 16
    k3d = _PI_SIX * (5 - 30 * z2) / 64
    k3c = _PI_FOUR * (-60 * z2 + 212 * z4) / 16
    k3b = _PI_SQUARED * (135 * z4 - 96 * z6) / 4
    k3a = -30 * z6 - 90 * z**8
    terms = np.zeros(4)
    largest_k = math.ceil(16 * z / math.pi)
    for k in range(largest_k, 0, -1):  # Horner scheme over odd m = 2k - 1 of c_m q^(m^2)
        m = 2 * k - 1
        m2, m4, m6 = m**2, m**4, m**6
        coefficients = np.array(
            [1.0, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4, k3a + k3b * m2 + k3c * m4 + k3d * m6]
        )
        terms *= q ** (8 * k)
        terms += coefficients
    terms *= q * _SQRT_2PI
    terms /= np.array([z, 6 * z4, 72 * z**7, 6480 * z**10])
    q = math.exp(-_PI_SQUARED / 2 / z2)  # the sums over all integers k for K2 and K3
    ks = np.arange(largest_k, 0, -1)
    k_squared = ks**2
    q_powers = q**k_squared
    terms[2] += float(np.sum(k_squared * q_powers)) * _PI_SQUARED * _SQRT_2PI / (-36 * z3)
    sqrt3_z, k_pi = _SQRT3 * z, math.pi * ks
    terms[3] += float(np.sum((sqrt3_z + k_pi) * (sqrt3_z - k_pi) * k_squared * q_powers)) * (
        _PI_SQUARED * _SQRT_2PI / (216 * z6)
    )
    terms /= np.power(float(n), np.arange(4) / 2.0)
    return float(terms.sum())


def _clip(probability: float) -> float:
    return min(1.0, max(0.0, probability))
