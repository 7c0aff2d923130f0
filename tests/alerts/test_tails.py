"""Tail probabilities against brute-force sums and the reference table in alerting.md §5."""

from __future__ import annotations

from math import exp, lgamma, log

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.tails import cdf, sf


def brute_pmf(i: int, mu: float, k: float | None) -> float:
    if k is None:
        return exp(i * log(mu) - mu - lgamma(i + 1))
    return exp(lgamma(i + k) - lgamma(k) - lgamma(i + 1) + k * log(k / (k + mu)) + i * log(mu / (k + mu)))


mus = st.floats(0.05, 200)
ks = st.one_of(st.none(), st.floats(0.5, 500))


@given(mu=mus, k=ks, x=st.integers(0, 400))
@settings(max_examples=300, deadline=None)
def test_cdf_matches_brute_force(mu: float, k: float | None, x: int) -> None:
    want = sum(brute_pmf(i, mu, k) for i in range(x + 1))
    assert cdf(x, mu, k) == pytest.approx(min(want, 1.0), rel=1e-9, abs=1e-12)


@given(mu=mus, k=ks, x=st.integers(0, 400))
@settings(max_examples=300, deadline=None)
def test_sf_and_cdf_are_complements(mu: float, k: float | None, x: int) -> None:
    assert sf(x, mu, k) + cdf(x - 1, mu, k) == pytest.approx(1.0, abs=1e-9)


@given(mu=mus, k=ks, x=st.integers(0, 300))
@settings(max_examples=200, deadline=None)
def test_tails_are_monotone_in_x(mu: float, k: float | None, x: int) -> None:
    assert sf(x + 1, mu, k) <= sf(x, mu, k) + 1e-15
    assert cdf(x + 1, mu, k) >= cdf(x, mu, k) - 1e-15


@pytest.mark.parametrize(("lam", "upper", "lower"), [(1, 6, None), (5, 15, None), (10, 24, 1), (50, 78, 26),
                                                     (100, 139, 65), (1000, 1120, 885)])
def test_poisson_thresholds_of_the_reference_table(lam: float, upper: int, lower: int | None) -> None:
    """alerting.md §5: alert if X > upper / X < lower at p < 1e-4 (computed there with scipy)."""
    assert sf(upper + 1, lam) < 1e-4 <= sf(upper, lam)
    if lower is None:
        assert cdf(0, lam) >= 1e-4
    else:
        assert cdf(lower - 1, lam) < 1e-4 <= cdf(lower, lam)


def test_negative_binomial_is_wider_than_poisson() -> None:
    """alerting.md §5: at mu=100 the p<1e-4 upper bound is 159 (k=100), 215 (k=20)."""
    assert sf(160, 100, 100) < 1e-4 <= sf(159, 100, 100)
    assert sf(216, 100, 20) < 1e-4 <= sf(215, 100, 20)


def test_large_means_stay_fast_and_sane() -> None:
    assert cdf(0, 1e6) == 0.0
    assert sf(1e6, 1e6) == pytest.approx(0.5, abs=0.01)
