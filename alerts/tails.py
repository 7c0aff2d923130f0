"""Count-aware tail probabilities (Poisson and negative binomial), pure Python: no scipy on the hot path.

Negative binomial tails come from the regularized incomplete beta function (P(X <= x) = I_p(k, x + 1), p = k/(k+mu)),
by its continued fraction: O(sqrt(max(k, x))) steps however heavy the tail, and the small side is always computed
directly (never as 1 - something), so far tails keep their precision. Poisson tails sum pmf terms from the tail
inward and stop when they no longer change the sum.
"""

from __future__ import annotations

from math import exp, floor, lgamma, log, log1p

_EPS = 1e-17
_MAX_TERMS = 2_000_000


def _logpmf(x: int, mu: float, k: float | None) -> float:
    if k is None:  # Poisson
        return x * log(mu) - mu - lgamma(x + 1)
    return (lgamma(x + k) - lgamma(k) - lgamma(x + 1)
            + k * (log(k) - log(k + mu)) + x * (log(mu) - log(k + mu)))


def _upper_sum(x: int, mu: float, k: float | None) -> float:
    """P(X >= x) for x >= mean: terms decrease from x upwards."""
    total = 0.0
    i = x
    while i - x < _MAX_TERMS:
        t = exp(_logpmf(i, mu, k))
        total += t
        if t <= total * _EPS or (t == 0.0 and i > mu):
            break
        i += 1
    return min(total, 1.0)


def _lower_sum(x: int, mu: float, k: float | None) -> float:
    """P(X <= x) for x < mean: summed from x downwards (terms rise to the mode, then fall)."""
    total = 0.0
    for i in range(x, -1, -1):
        t = exp(_logpmf(i, mu, k))
        total += t
        if i < mu and t <= total * _EPS:
            break
    return min(total, 1.0)


_FPMIN = 1e-300
_CF_EPS = 1e-15
_CF_MAXIT = 100_000


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _FPMIN else _FPMIN)
    h = d
    for m in range(1, _CF_MAXIT):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > _FPMIN else _FPMIN)
            c = 1.0 + aa / c
            c = c if abs(c) > _FPMIN else _FPMIN
            h *= d * c
        if abs(d * c - 1.0) < _CF_EPS:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return min(1.0, front * _betacf(a, b, x) / a)
    return max(0.0, 1.0 - front * _betacf(b, a, 1.0 - x) / b)


def _nb_cdf(xi: int, mu: float, k: float) -> float:
    """P(X <= xi) = I_p(k, xi + 1); the upper side as I_{1-p}(xi + 1, k) when that is the small one."""
    p = k / (k + mu)
    if xi < mu:
        return betainc(k, xi + 1.0, p)
    return 1.0 - betainc(xi + 1.0, k, 1.0 - p)


def _nb_sf(xi: int, mu: float, k: float) -> float:
    """P(X >= xi) = I_{1-p}(xi, k) for xi >= 1."""
    p = k / (k + mu)
    if xi >= mu:
        return betainc(float(xi), k, 1.0 - p)
    return 1.0 - betainc(k, float(xi), p)


def sf(x: float, mu: float, k: float | None = None) -> float:
    """P(X >= x) for X ~ Poisson(mu) (k None) or NegBin(mean mu, size k)."""
    xi = int(-floor(-x))  # ceil: counts are integers
    if xi <= 0:
        return 1.0
    if mu <= 0:
        return 0.0
    if k is not None:
        return min(1.0, max(0.0, _nb_sf(xi, mu, k)))
    if xi >= mu:
        return _upper_sum(xi, mu, k)
    return max(0.0, 1.0 - _lower_sum(xi - 1, mu, k))


def cdf(x: float, mu: float, k: float | None = None) -> float:
    """P(X <= x) for X ~ Poisson(mu) (k None) or NegBin(mean mu, size k)."""
    xi = floor(x)
    if xi < 0:
        return 0.0
    if mu <= 0:
        return 1.0
    if k is not None:
        return min(1.0, max(0.0, _nb_cdf(xi, mu, k)))
    if xi < mu:
        return _lower_sum(xi, mu, k)
    return max(0.0, 1.0 - _upper_sum(xi + 1, mu, k))
