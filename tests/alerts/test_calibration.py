"""The calibrated detector on its own: on stationary overdispersed traffic the rarity it computes is the rarity it sees
and the alert rate stays within the false-alarm budget, whatever the series' volume and dispersion (hypothesis);
one incident is one alert (its decay is not a drop); an incident never echoes a day or a week later."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.calibrate import Tail, combined
from alerts.config import Config, Thresholds
from alerts.detector import Cell, Check, SeriesKey, SeriesState, advance, assess, calibrate, learn, slots
from alerts.memory import MemoryDetector

B = 300_000
DAY = 288
WEEK = 7 * DAY
KEY = SeriesKey("app", "fb", "install")


TH = Thresholds()


def simulate(counts: list[int], th: Thresholds = TH) -> tuple[list[Check], list[str]]:
    """One series through assess/learn/advance; the checks and the transitions ("fired spike", "resolved drop")."""
    st_ = SeriesState()
    cells: dict[tuple[str, int], Cell] = {}
    checks, events = [], []
    for b, n in enumerate(counts):
        d, w = slots(b * B, B)
        day, week = cells.get(("d", d), Cell()), cells.get(("w", w), Cell())
        c = assess(st_, n, day, week, th, B)
        st0 = st_
        st_, day, week = learn(st_, n, c, day, week, (b + 1) * B, th, B)
        st_, tr = advance(st_, KEY, n, c, b * B, B, th)
        st_ = calibrate(st0, st_, c, th, B)
        cells[("d", d)], cells[("w", w)] = day, week
        checks.append(c)
        if tr is not None:
            events.append(f"{b} {tr.kind} {tr.incident.direction}")
    return checks, events


def nb(rng: np.random.Generator, mu: np.ndarray, k: float) -> list[int]:
    return [int(x) for x in rng.poisson(rng.gamma(k, mu / k))]


@given(mu=st.floats(5, 300), k=st.floats(3, 30), seed=st.integers(0, 2**16))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_on_stationary_overdispersed_traffic_rarity_and_alert_rate_match_the_budget(mu: float, k: float,
                                                                                    seed: int) -> None:
    weeks = 4
    counts = nb(np.random.default_rng(seed), np.full(weeks * WEEK, mu), k)
    th = Thresholds()
    checks, events = simulate(counts, th)
    later = [c for c in checks[WEEK:] if c.expected is not None]  # after a week of its own history
    for q in (0.05, 0.01):
        for side in ("r_up", "r_down"):
            seen = sum(getattr(c, side) < q for c in later) / len(later)
            assert seen < 3 * q, (side, q, seen)  # never much more often than it claims
    fired = [e for e in events if "fired" in e and int(e.split()[0]) >= WEEK]
    assert len(fired) <= th.false_alarms_per_week * (weeks - 1) * 2 + 1, fired


def test_the_tail_learns_a_heavier_tail_than_the_model_and_forgets() -> None:
    rng = np.random.default_rng(1)
    t = Tail()
    for _ in range(20_000):  # 1 % of buckets exceed the model's 1 % point, by Exp(mean 1.5): a heavy tail
        t = t.update(2.0 + rng.exponential(1.5) if rng.random() < 0.01 else 0.5, 0.99995)
    want = 0.01 * math.exp(-3 / 1.5)  # P(score >= 5) of that stream; the model would say 1e-5
    assert want / 2 < t.rarity(5.0) < want * 2 and t.rarity(8.0) < t.rarity(5.0)
    fresh = Tail()
    assert fresh.rarity(4.0) > 10 ** -4  # the prior is more cautious than the model
    assert combined(math.log(1e-3) * 2, 2) > 1e-6  # a run is judged as a run, not as the product alone


def run_detector(days: float, shape: Callable[[int], float], seed: int = 3, mu: float = 60.0,
                 k: float = 12.0) -> list[tuple[int, dict]]:
    """One app, two sources (fb carries the shape), daily seasonality, NB traffic; the alerts sent."""
    det = MemoryDetector(Config(bucket_ms=B))
    rng = np.random.default_rng(seed)
    out = []
    for b in range(int(days * DAY)):
        season = 1 + 0.4 * math.sin(2 * math.pi * (b % DAY) / DAY)
        counts = {}
        for src, m in (("fb", mu * shape(b)), ("google", 30.0)):
            lam = rng.gamma(k, m * season / k) if m > 0 else 0.0
            counts[SeriesKey("app", src, "install")] = int(rng.poisson(lam))
        out += [(b, a.record) for a in det.step(b * B, counts)]
    return [(b, r) for b, r in out if not json.loads(r["detail"]).get("repeat")]


def test_one_spike_with_its_decay_is_one_alert_and_one_resolve_and_no_drop() -> None:
    t0 = 10 * DAY + 100

    def shape(b: int) -> float:  # x5 for 15 min, then an exponential decay back to normal over ~2 h
        if t0 <= b < t0 + 3:
            return 5.0
        return 1.0 + 4.0 * math.exp(-(b - t0 - 3) / 6) if t0 + 3 <= b < t0 + 30 else 1.0

    out = [(b, r) for b, r in run_detector(11, shape) if b >= t0 - DAY]
    assert [(r["state"], r["direction"], r["media_source"]) for _, r in out] == [
        ("firing", "spike", "fb"), ("resolved", "spike", "fb")]
    assert out[0][0] - t0 <= 2 and out[0][1]["alert_id"] == out[1][1]["alert_id"]


def test_an_incident_does_not_echo_a_day_or_a_week_later() -> None:
    t0 = 22 * DAY + 150  # after three weeks: weekly slots in use

    def shape(b: int) -> float:
        return 4.0 if t0 <= b < t0 + 12 else 1.0  # x4 for an hour

    out = [(b, r) for b, r in run_detector(30, shape, seed=5) if b >= t0 - DAY and r["media_source"] == "fb"]
    assert [(r["state"], r["direction"]) for _, r in out] == [("firing", "spike"), ("resolved", "spike")], [
        (b - t0, r["state"], r["direction"], r["media_source"]) for b, r in out]
