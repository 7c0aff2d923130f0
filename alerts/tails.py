"""Count-aware tail probabilities (Poisson and negative binomial), pure Python: no scipy on the hot path.

Sums pmf terms from the tail inward and stops when they no longer change the sum, so the cost is O(sqrt(mean)) terms
near the mean and a handful in the far tails (the case that matters for alerting).
"""

from __future__ import annotations

from math import exp, floor, lgamma, log

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


def sf(x: float, mu: float, k: float | None = None) -> float:
    """P(X >= x) for X ~ Poisson(mu) (k None) or NegBin(mean mu, size k)."""
    xi = int(-floor(-x))  # ceil: counts are integers
    if xi <= 0:
        return 1.0
    if mu <= 0:
        return 0.0
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
    if xi < mu:
        return _lower_sum(xi, mu, k)
    return max(0.0, 1.0 - _upper_sum(xi + 1, mu, k))
