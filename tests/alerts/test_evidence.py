"""The two-bucket evidence tests (alerts/evidence.py): their model tail is what the calibration's prior assumes, one
bucket never alerts alone (an isolated zero or a one-bucket burst), two buckets of a stop or of a deep drop do, and on
stationary overdispersed traffic with missing buckets and bursts their calibrated rarity and alert rate keep to the
budget."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts import evidence
from alerts.config import Thresholds
from alerts.detector import alarm_p
from tests.alerts.test_calibration import DAY, WEEK, B, nb, simulate

CAP = evidence.cap_for(alarm_p(Thresholds(), B))


@given(mu=st.floats(2, 300), k=st.floats(3, 30), seed=st.integers(0, 2**16))
@settings(max_examples=20, deadline=None)
def test_under_the_model_the_evidence_score_is_as_rare_as_its_prior_says(mu: float, k: float, seed: int) -> None:
    """P(score >= s) <= 10^-s for spikes, 4 x that for drops (the stop alternative): checked at s = 1 and 2."""
    n = 30_000
    xs = nb(np.random.default_rng(seed), np.full(n, mu), k)
    prev = (0.0, 0.0)
    seen = {("drop", 1): 0, ("drop", 2): 0, ("spike", 1): 0, ("spike", 2): 0}
    for x in xs:
        cur = (evidence.drop_llr(x, mu, k), evidence.spike_llr(x, mu, k))
        for s in (1, 2):
            seen[("drop", s)] += evidence.score(prev[0], cur[0], CAP) >= s
            seen[("spike", s)] += evidence.score(prev[1], cur[1], CAP) >= s
        prev = cur
    for (side, s), c in seen.items():
        bound = (4 if side == "drop" else 1) * 10.0 ** -s
        assert c / n <= bound + 4 * math.sqrt(bound / n), (side, s, c / n, bound)


NEED = -math.log10(alarm_p(Thresholds(), B))  # the evidence (log10) an alert needs under the model


@given(x=st.integers(0, 5000), other=st.integers(0, 5000), mu=st.floats(0.5, 1000), k=st.floats(0.5, 1000))
def test_one_bucket_carries_at_most_half_the_evidence_an_alert_needs(x: int, other: int, mu: float, k: float) -> None:
    """Whatever one bucket shows, next to a bucket that does not point the same way the pair scores <= half."""
    for one in (evidence.drop_llr, evidence.spike_llr):
        a, b = one(x, mu, k), one(other, mu, k)
        if b <= 0:
            assert evidence.score(b, a, CAP) <= NEED / 2 + 1e-9 and evidence.score(a, b, CAP) <= NEED / 2 + 1e-9


def test_two_empty_buckets_of_a_busy_series_are_far_beyond_the_need_one_is_half_and_a_normal_one_undoes_it() -> None:
    zero = evidence.drop_llr(0, 40.0, 12.0)
    assert math.isclose(evidence.score(0.0, zero, CAP), NEED / 2)
    assert evidence.score(zero, zero, CAP) == 2 * zero / math.log(10) > 2 * NEED
    assert evidence.score(zero, evidence.drop_llr(40, 40.0, 12.0), CAP) == 0.0


def steady(seed: int, weeks: int, mu: float = 60.0, k: float = 12.0) -> list[int]:
    return nb(np.random.default_rng(seed), np.full(weeks * WEEK, mu), k)


def test_an_isolated_empty_bucket_is_no_alert_two_in_a_row_are_one_at_the_second() -> None:
    base = steady(7, 2)
    t = 2 * WEEK - DAY
    one = [*base[:t], 0, *base[t + 1:]]
    _, events = simulate(one)
    assert not [e for e in events if int(e.split()[0]) >= t - 1]
    two = [*base[:t], 0, 0, *base[t + 2:]]
    checks, events = simulate(two)
    fired = [e for e in events if int(e.split()[0]) >= t - 1 and "fired" in e]
    assert fired == [f"{t + 1} fired drop"] and checks[t + 1].method == "evidence"


def test_a_drop_to_20_percent_of_a_busy_series_is_caught_at_its_second_bucket() -> None:
    base = steady(8, 2, mu=120.0, k=20.0)
    t = 2 * WEEK - DAY
    low = nb(np.random.default_rng(9), np.full(12, 24.0), 20.0)
    _, events = simulate([*base[:t], *low, *base[t + 12:]])
    fired = [e for e in events if int(e.split()[0]) >= t - 1 and "fired" in e]
    assert fired and fired[0] in (f"{t} fired drop", f"{t + 1} fired drop"), fired


@given(mu=st.floats(10, 300), k=st.floats(3, 30), seed=st.integers(0, 2**16))
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_with_missing_buckets_and_bursts_the_evidence_keeps_to_the_budget(mu: float, k: float, seed: int) -> None:
    """Stationary NB traffic, one empty bucket a day and a one-bucket burst (x2-x6) every other day: both are normal
    life for the series. The evidence's calibrated rarity is never much more frequent than it claims, and the detector
    as a whole stays within its budget."""
    weeks = 4
    rng = np.random.default_rng(seed)
    mult = np.where(rng.random(weeks * WEEK) < 1 / (2 * DAY), rng.uniform(2, 6, weeks * WEEK), 1.0)
    counts = nb(rng, mu * mult, k)
    counts = [0 if rng.random() < 1 / DAY else x for x in counts]
    th = Thresholds()
    checks, events = simulate(counts, th)
    later = [c for c in checks[WEEK:] if c.expected is not None]
    for q in (0.01, 0.001):
        for side in ("e_up", "e_down"):
            seen = sum(getattr(c, side) < q for c in later) / len(later)
            assert seen < 3 * q, (side, q, seen)
    fired = [e for e in events if "fired" in e and int(e.split()[0]) >= WEEK]
    assert len(fired) <= th.false_alarms_per_week * (weeks - 1) * 2 + 1, fired
