"""Per-series calibration of surprise scores: "how rare is this bucket *for this series*", not "how significant under
a fixed model". Pure functions over plain numbers.

A bucket's *score* is -log10 of its model tail probability (negative binomial with the series' own online dispersion).
If the model were exact, P(score >= s) = 10^-s. Real series have heavier tails than any fixed model (bursts, missing
buckets, baseline error), so each series keeps the empirical tail of its own scores: a histogram of the scores above
``U`` (the model's 1 %) in bins, with exponential forgetting. Rarity(s) = the share of the series' buckets that scored
at least s. A conservative prior (twice the model's tail, worth ``PRIOR_N`` buckets) speaks where the series has no
history yet, and beyond the highest score it has seen.

The two-bucket evidence (alerts/evidence.py) is scored so that its model tail is about 10^-s as well: one prior fits
every stream.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cache

from alerts.tails import cdf, sf

U = 2.0  # scores above this (model p < 1 %) are kept in the histogram
EDGES = (2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 50.0, math.inf)
PRIOR_N = 1000.0  # the prior is worth this many buckets of history
BINS = len(EDGES) - 1


@cache
def prior() -> tuple[float, ...]:
    """The prior's mass per bin: twice the model's tail 10^-s, worth PRIOR_N buckets."""
    return tuple(PRIOR_N * 2 * (10 ** -lo - (10 ** -hi if hi < math.inf else 0.0))
                 for lo, hi in itertools.pairwise(EDGES))


@dataclass(frozen=True)
class Tail:
    """Decayed count of the buckets seen and histogram of their scores above U."""

    n: float = 0.0
    bins: tuple[float, ...] = (0.0,) * BINS

    def update(self, score: float, decay: float) -> Tail:
        bins = [c * decay for c in self.bins]
        if score >= U:
            bins[_bin(score)] += 1.0
        return Tail(self.n * decay + 1.0, tuple(bins))

    def astuple(self) -> tuple[float, ...]:
        return (self.n, *self.bins)

    @classmethod
    def of(cls, t: tuple[float, ...] | list[float]) -> Tail:
        return cls(t[0], tuple(t[1:])) if len(t) == BINS + 1 else cls()

    def rarity(self, score: float) -> float:
        """Calibrated P(a bucket of this series scores >= score)."""
        total = self.n + PRIOR_N
        pri = prior()
        if score < U:  # below the histogram: the model's slope from U down, continuous at U
            at_u = sum(c + p for c, p in zip(self.bins, pri, strict=True)) / total
            return min(1.0, at_u * 10 ** (U - score))
        j = _bin(score)
        lo, hi = EDGES[j], EDGES[j + 1]
        frac = (hi - score) / (hi - lo) if hi < math.inf else 0.0  # share of bin j at or above the score
        mass = sum(c + p for c, p in zip(self.bins[j + 1:], pri[j + 1:], strict=True))
        mass += frac * (self.bins[j] + pri[j])
        if hi == math.inf or mass <= 0:
            mass += PRIOR_N * 2 * 10 ** -score
        return min(1.0, mass / total)


def _bin(score: float) -> int:
    for j in range(BINS):
        if score < EDGES[j + 1]:
            return j
    return BINS - 1


def score_up(observed: float, mu: float, k: float | None) -> float:
    return _score(sf(observed, max(mu, 1e-9), k))


def score_down(observed: float, mu: float, k: float | None) -> float:
    return _score(cdf(observed, mu, k))


def _score(p: float) -> float:
    return -math.log10(max(p, 1e-300))


def combined(ln_product: float, n: int) -> float:
    """P(product of n independent uniform rarities <= exp(ln_product)): how rare a *run* of rare buckets is
    (Fisher's method in closed form: c * sum_{j<n} (-ln c)^j / j!)."""
    if n <= 0:
        return 1.0
    c = math.exp(ln_product)
    x = -ln_product
    term, total = 1.0, 1.0
    for j in range(1, n):
        term *= x / j
        total += term
    return min(1.0, c * total)


def decay_for(halflife_buckets: float) -> float:
    return 0.5 ** (1.0 / max(halflife_buckets, 1.0))
