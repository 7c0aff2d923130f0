"""Spike/drop detection on per-bucket counts. Pure: no I/O, no clock; the Faust app (alerts/app.py) and the
benchmark (bench/alerts.py) feed it buckets and persist what it returns.

One *series* is (app, media source, event type); media source ``*`` is the platform-wide series of an (app, event
type). Per closed bucket:

1. ``assess`` — baseline: the same slot on previous weeks (>= min_seasons weeks of history) or days, scaled by the
   recent level ratio; an EWMA of recent buckets otherwise. Test: negative-binomial (or Poisson) tail p-value **and**
   the floors (spike: observed >= spike_ratio x expected and >= min_delta extra; drop: expected >= min_expected and
   observed <= drop_ratio x expected); then the same over the sum of the last window_buckets (sustained moderate
   changes). Low-volume series use the silence timer instead: no event while the expected count accumulated since
   the last event makes P(silence) = exp(-sum) < silence_p_value.
2. ``learn`` — only clean buckets move the baseline, so an incident does not teach the detector that it is normal.
3. ``advance`` — N consecutive abnormal buckets open an incident; M consecutive clean ones resolve it.
4. ``evaluate_bucket`` — runs 1–3 over all series and decides what to *send*: a platform-wide incident explained by
   >= platform_min_sources abnormal sources suppresses their per-source alerts; a platform anomaly caused by a single
   source is left to that source's alert; mutes silence sending (not detection); open incidents repeat every repeat_ms.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from alerts.config import Config, Mute, Thresholds
from alerts.tails import cdf, sf

PLATFORM = "*"
SEP = "\x1f"
Direction = Literal["spike", "drop"]
LEVEL_ALPHA = 0.1  # slow: the level ratio corrects seasonal profiles for growth, it must not chase noise
LEVEL_CLAMP = (0.5, 2.0)
SLOW_ALPHA = 0.05  # ~20-bucket memory: the silence timer's rate, where a 5-min slot estimate is too noisy


@dataclass(frozen=True, order=True)
class SeriesKey:
    app_id: str
    media_source: str
    event_type: str

    @property
    def is_platform(self) -> bool:
        return self.media_source == PLATFORM

    @property
    def group(self) -> tuple[str, str]:
        return (self.app_id, self.event_type)

    def platform(self) -> SeriesKey:
        return SeriesKey(self.app_id, PLATFORM, self.event_type)

    def encode(self) -> str:
        return SEP.join((self.app_id, self.media_source, self.event_type))

    @classmethod
    def decode(cls, s: str) -> SeriesKey:
        a, m, e = s.split(SEP)
        return cls(a, m, e)

    def __str__(self) -> str:
        return f"{self.app_id or '-'}/{self.media_source}/{self.event_type}"


@dataclass(frozen=True)
class Cell:
    """One seasonal slot (same time of day, or of week): smoothed count over the seasons seen."""

    mean: float = 0.0
    n: int = 0

    def update(self, observed: float, alpha: float) -> Cell:
        return Cell(observed if self.n == 0 else (1 - alpha) * self.mean + alpha * observed, self.n + 1)


@dataclass(frozen=True)
class Incident:
    alert_id: str
    direction: Direction
    start_ms: int
    end_ms: int  # end of the last abnormal bucket
    observed: float
    expected: float
    p_value: float
    buckets: int
    clean: int = 0
    notified: bool = False
    last_notified_ms: int = 0
    method: str = ""
    explained: bool = False  # overlapped a sent platform-wide alert: never announced on its own


@dataclass(frozen=True)
class SeriesState:
    n: int = 0  # buckets learnt
    ewma: float | None = None
    slow: float | None = None
    level: float = 1.0  # observed / seasonal, smoothed (clean buckets only)
    silent_expected: float = 0.0  # expected events accumulated since the last observed event
    silent_rate: float = 0.0  # the expected rate when the silence began: zeros learnt since must not erode it
    last_seen_ms: int | None = None
    run_dir: Direction | None = None
    run: int = 0
    run_start_ms: int = 0
    run_observed: float = 0.0
    run_expected: float = 0.0
    run_p: float = 1.0
    recent: tuple[tuple[float, float], ...] = ()  # (observed, expected) of the last window_buckets - 1 buckets
    incident: Incident | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeriesState:
        inc = d.get("incident")
        recent = tuple(tuple(x) for x in d.get("recent", ()))
        return cls(**{**d, "recent": recent, "incident": Incident(**inc) if inc else None})


@dataclass(frozen=True)
class Check:
    verdict: Direction | None
    expected: float | None
    p_value: float
    method: str  # weekly|daily|ewma|warmup|silence


def baseline(state: SeriesState, day: Cell, week: Cell, th: Thresholds) -> tuple[float | None, str]:
    """Expected count for the bucket and the method that produced it (None while warming up)."""
    if week.n >= th.min_seasons or day.n >= th.min_seasons:
        seasonal, method = (week.mean, "weekly") if week.n >= th.min_seasons else (day.mean, "daily")
        return seasonal * min(max(state.level, LEVEL_CLAMP[0]), LEVEL_CLAMP[1]), method
    if state.n < th.warmup_buckets or state.ewma is None:
        return None, "warmup"
    return state.ewma, "ewma"


def assess(state: SeriesState, observed: int, day: Cell, week: Cell, th: Thresholds) -> Check:
    """Is this bucket abnormal, and which way?"""
    expected, method = baseline(state, day, week, th)
    if expected is None:
        return Check(None, None, 1.0, method)
    k = th.dispersion_k
    if observed >= expected + th.min_delta and observed >= th.spike_ratio * expected:
        p = sf(observed, max(expected, 1e-9), k)
        if p < th.p_value:
            return Check("spike", expected, p, method)
    if expected >= th.min_expected:
        if observed <= th.drop_ratio * expected:
            p = cdf(observed, expected, k)
            if p < th.p_value:
                return Check("drop", expected, p, method)
    elif observed == 0 and expected > 0:
        # silence timer for low-volume series: Poisson P(no event over the silent span) = exp(-sum of expected)
        # the rate comes from the slow EWMA too: a noisy 5-min slot estimate of a low count would fire falsely
        rate = min(expected, state.slow if state.slow is not None else expected)
        silent = state.silent_expected + max(rate, state.silent_rate)
        p = math.exp(-silent)
        if p < th.silence_p_value:
            return Check("drop", expected, p, "silence")
    return _window(state, observed, expected, method, th)


def _window(state: SeriesState, observed: int, expected: float, method: str, th: Thresholds) -> Check:
    """The sum of the last W buckets against the sum expected: sees a sustained -40 % or +60 % that no single bucket
    can show. The current bucket must lean the same way, so the tail of a one-bucket burst does not keep firing."""
    w = th.window_buckets
    if w <= 1 or len(state.recent) < w - 1:
        return Check(None, expected, 1.0, method)
    obs = sum(o for o, _ in state.recent[-(w - 1):]) + observed
    exp = sum(e for _, e in state.recent[-(w - 1):]) + expected
    k = th.dispersion_k * w if th.dispersion_k else None  # a sum of w NB(mu, k) is close to NB(w mu, w k)
    if (obs >= th.window_spike_ratio * exp and obs - exp >= th.min_delta
            and observed >= th.window_spike_ratio * expected):
        p = sf(obs, max(exp, 1e-9), k)
        if p < th.p_value:
            return Check("spike", expected, p, "window")
    # drops: only where a window holds enough volume (>= 3 x min_expected); thinner series have the silence timer
    if (exp >= 3 * th.min_expected and obs <= th.window_drop_ratio * exp
            and observed <= th.window_drop_ratio * expected):
        p = cdf(obs, exp, k)
        if p < th.p_value:
            return Check("drop", expected, p, "window")
    return Check(None, expected, 1.0, method)


def learn(state: SeriesState, observed: int, check: Check, day: Cell, week: Cell, bucket_end_ms: int,
          th: Thresholds, frozen: bool = False) -> tuple[SeriesState, Cell, Cell]:
    """Move the baseline with a clean bucket; abnormal buckets (and ``frozen`` ones: the platform-wide series is
    abnormal, so this source's bucket says nothing about its own normal) leave it where it was."""
    exp_ = check.expected or 0.0
    srate = min(exp_, state.slow if state.slow is not None else exp_)
    if check.expected is not None and th.window_buckets > 1:
        # a bucket the per-bucket test already flagged enters the window as neutral: its burst must not echo
        # through the next W buckets as a second alert
        x = float(observed) if not frozen and (check.verdict is None or check.method == "window") else exp_
        state = replace(state, recent=((*state.recent, (x, exp_)))[-(th.window_buckets - 1):])
    seen: int | None
    if observed > 0:
        silent, rate, seen = 0.0, 0.0, bucket_end_ms
    else:
        rate = state.silent_rate if state.silent_expected > 0 else srate
        silent, seen = state.silent_expected + max(srate, rate), state.last_seen_ms
    if check.verdict is not None or frozen:
        return replace(state, silent_expected=silent, silent_rate=rate, last_seen_ms=seen), day, week
    x = float(observed)
    if check.expected is not None:
        # winsorize: a burst that stayed under the alert floors must not inflate the baseline (and then read as a drop
        # when it ends); a real level shift still gets in, 3 sd per bucket
        sd = math.sqrt(exp_ + (exp_ * exp_ / th.dispersion_k if th.dispersion_k else 0.0))
        x = min(max(x, exp_ - 3 * sd - 1), exp_ + 3 * sd + 1)
    a = th.ewma_alpha
    ewma = x if state.ewma is None else (1 - a) * state.ewma + a * x
    slow = x if state.slow is None else (1 - SLOW_ALPHA) * state.slow + SLOW_ALPHA * x
    level = state.level
    seasonal = week.mean if week.n >= th.min_seasons else day.mean if day.n >= th.min_seasons else None
    if seasonal is not None:
        level = (1 - LEVEL_ALPHA) * level + LEVEL_ALPHA * (x + 1) / (seasonal + 1)
    st = replace(state, n=state.n + 1, ewma=ewma, slow=slow, level=level, silent_expected=silent, silent_rate=rate,
                 last_seen_ms=seen)
    return st, day.update(x, th.season_alpha), week.update(x, th.season_alpha)


def alert_id(key: SeriesKey, direction: str, start_ms: int) -> str:
    """Deterministic, so a re-evaluated bucket (at-least-once replay) yields the same id."""
    return hashlib.sha1(f"{key.encode()}|{direction}|{start_ms}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Transition:
    kind: Literal["fired", "resolved"]
    incident: Incident


def advance(st: SeriesState, state_key: SeriesKey, observed: int, check: Check, bucket_start_ms: int,
            bucket_ms: int, th: Thresholds) -> tuple[SeriesState, Transition | None]:
    """The N-to-fire / M-to-recover state machine for one series."""
    end = bucket_start_ms + bucket_ms
    inc = st.incident
    if inc is None:
        if check.verdict is None or check.expected is None:
            return replace(st, run_dir=None, run=0, run_observed=0.0, run_expected=0.0, run_p=1.0), None
        if st.run_dir == check.verdict:
            st = replace(st, run=st.run + 1, run_observed=st.run_observed + observed,
                         run_expected=st.run_expected + check.expected, run_p=min(st.run_p, check.p_value))
        else:
            st = replace(st, run_dir=check.verdict, run=1, run_start_ms=bucket_start_ms, run_observed=float(observed),
                         run_expected=check.expected, run_p=check.p_value)
        if st.run < th.fire_after:
            return st, None
        assert st.run_dir is not None
        new = Incident(alert_id(state_key, st.run_dir, st.run_start_ms), st.run_dir, st.run_start_ms, end,
                       st.run_observed, st.run_expected, st.run_p, st.run, method=check.method)
        return replace(st, incident=new), Transition("fired", new)
    if check.verdict == inc.direction and check.expected is not None:
        inc = replace(inc, end_ms=end, observed=inc.observed + observed, expected=inc.expected + check.expected,
                      p_value=min(inc.p_value, check.p_value), buckets=inc.buckets + 1, clean=0)
        return replace(st, incident=inc), None
    inc = replace(inc, clean=inc.clean + 1)
    if inc.clean >= th.recover_after:
        return replace(st, incident=None, run_dir=None, run=0, run_observed=0.0, run_expected=0.0,
                       run_p=1.0), Transition("resolved", inc)
    return replace(st, incident=inc), None


# --- mutes ----------------------------------------------------------------------------------------------------------

def muted(mutes: Iterable[Mute], key: SeriesKey, ts_ms: int) -> bool:
    t = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    for m in mutes:
        if m.app_id is not None and m.app_id != key.app_id:
            continue
        if m.media_source is not None and m.media_source != key.media_source:
            continue
        if m.event_type is not None and m.event_type != key.event_type:
            continue
        if m.start is not None and t < m.start:
            continue
        if m.end is not None and t >= m.end:
            continue
        if m.daily is not None:
            a, b = m.daily.split("-")
            lo, hi = (int(a[:2]) * 60 + int(a[3:])), (int(b[:2]) * 60 + int(b[3:]))
            now = t.hour * 60 + t.minute
            if not (lo <= now < hi if lo <= hi else now >= lo or now < hi):
                continue
        return True
    return False


# --- one bucket over all series --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SeriesInput:
    state: SeriesState
    observed: int
    day: Cell = Cell()
    week: Cell = Cell()


@dataclass(frozen=True)
class SeriesOutput:
    state: SeriesState | None  # None: forget the series (expired)
    day: Cell
    week: Cell
    check: Check


@dataclass
class AlertOut:
    """What goes on an alert topic (fields of schemas/alert.avsc)."""

    record: dict[str, Any]
    key: SeriesKey = field(compare=False)


def _severity(key: SeriesKey) -> str:
    return "critical" if key.is_platform else "warning"


def _record(key: SeriesKey, inc: Incident, state: str, now_ms: int, detail: str) -> dict[str, Any]:
    return {
        "alert_id": inc.alert_id, "state": state, "direction": inc.direction, "severity": _severity(key),
        "scope": "platform" if key.is_platform else "source", "app_id": key.app_id or None,
        "media_source": None if key.is_platform else key.media_source, "event_type": key.event_type,
        "observed": float(inc.observed), "expected": round(float(inc.expected), 3), "bucket_start": inc.start_ms,
        "bucket_end": inc.end_ms, "created_at": now_ms,
        "resolved_at": inc.end_ms if state == "resolved" else None, "p_value": inc.p_value, "detail": detail,
    }


def evaluate_bucket(series: dict[SeriesKey, SeriesInput], bucket_start_ms: int, now_ms: int, cfg: Config,
                    ) -> tuple[dict[SeriesKey, SeriesOutput], list[AlertOut]]:
    """Assess, learn and advance every series for one closed bucket; return new state and the alerts to send."""
    end = bucket_start_ms + cfg.bucket_ms
    out: dict[SeriesKey, SeriesOutput] = {}
    transitions: dict[SeriesKey, Transition] = {}
    # sources far below their baseline, per group: when several are and the platform total drops too, it is a
    # platform-wide outage and no source should learn from it
    low: dict[tuple[str, str], int] = {}
    for key, si in series.items():
        if not key.is_platform:
            th = cfg.thresholds_for(key.media_source)
            e, _ = baseline(si.state, si.day, si.week, th)
            if e is not None and e >= 1 and si.observed <= th.drop_ratio * e:
                low[key.group] = low.get(key.group, 0) + 1
    for key in sorted(series, key=lambda k: (not k.is_platform, k)):  # platform first: sources look at it
        si = series[key]
        th = cfg.thresholds_for(key.media_source)
        check = assess(si.state, si.observed, si.day, si.week, th)
        frozen = False
        if not key.is_platform and key.platform() in out and low.get(key.group, 0) >= cfg.platform_min_sources:
            p = out[key.platform()]
            frozen = p.check.verdict == "drop" or (p.state is not None and p.state.incident is not None
                                                   and p.state.incident.direction == "drop")
        st, day, week = learn(si.state, si.observed, check, si.day, si.week, end, th, frozen)
        st, tr = advance(st, key, si.observed, check, bucket_start_ms, cfg.bucket_ms, th)
        if tr is not None:
            transitions[key] = tr
        expired = (st.incident is None and st.last_seen_ms is not None and end - st.last_seen_ms > cfg.series_ttl_ms)
        out[key] = SeriesOutput(None if expired else st, day, week, check)

    def abnormal(key: SeriesKey, d: str) -> bool:
        o = out[key]
        inc = o.state.incident if o.state else None
        return o.check.verdict == d or (inc is not None and inc.direction == d) or (
            key in transitions and transitions[key].incident.direction == d and transitions[key].kind == "fired")

    groups: dict[tuple[str, str], list[SeriesKey]] = {}
    for key in out:
        if not key.is_platform:
            groups.setdefault(key.group, []).append(key)
    broad: dict[tuple[str, str, str], list[SeriesKey]] = {}
    for g, keys in groups.items():
        for d in ("spike", "drop"):
            hit = sorted(k for k in keys if abnormal(k, d))
            if len(hit) >= cfg.platform_min_sources:
                broad[(g[0], g[1], d)] = hit

    def platform_active(key: SeriesKey, d: str) -> bool:
        p = out.get(key.platform())
        if p is None or p.state is None:
            return False
        inc = p.state.incident
        return p.state.run_dir == d or (inc is not None and inc.direction == d)

    # silence during an open platform-wide drop is explained by it: it must not count towards a source's own timer
    for key, o in list(out.items()):
        po = out.get(key.platform())
        if (not key.is_platform and o.state is not None and o.state.silent_expected > 0 and po is not None
                and po.state is not None and po.state.incident is not None and po.state.incident.direction == "drop"):
            out[key] = replace(o, state=replace(o.state, silent_expected=0.0))

    def platform_sent(key: SeriesKey, d: str) -> bool:
        p = out.get(key.platform())
        inc = p.state.incident if p is not None and p.state is not None else None
        return inc is not None and inc.direction == d and (inc.notified or transitions.get(key.platform()) is not None)

    alerts: list[AlertOut] = []
    # platform series first, so the per-source decisions below see whether the platform alert went out
    for key in sorted(out, key=lambda k: (not k.is_platform, k)):
        o = out[key]
        tr = transitions.get(key)
        if tr is not None and tr.kind == "resolved":
            if tr.incident.notified:
                dur = tr.incident.end_ms - tr.incident.start_ms
                alerts.append(AlertOut(_record(key, tr.incident, "resolved", now_ms, json.dumps(
                    {"buckets": tr.incident.buckets, "duration_s": dur // 1000, "method": tr.incident.method})), key))
            continue
        if o.state is None or o.state.incident is None:
            continue
        inc = o.state.incident
        d = inc.direction
        b = broad.get((key.app_id, key.event_type, d))
        if key.is_platform:
            suppressed = b is None
        else:
            suppressed = b is not None and platform_active(key, d)
            if suppressed and platform_sent(key, d) and not inc.explained:
                inc = replace(inc, explained=True)
                out[key] = o = replace(o, state=replace(o.state, incident=inc))
        if suppressed or inc.explained or muted(cfg.mutes, key, bucket_start_ms):
            continue
        # first notice only while still abnormal: an incident a suppression or mute held back and that is already
        # recovering is stale news
        due = (not inc.notified and inc.clean == 0) or (inc.notified and end - inc.last_notified_ms >= cfg.repeat_ms)
        if not due:
            continue
        detail: dict[str, Any] = {"buckets": inc.buckets, "method": inc.method, "repeat": inc.notified}
        if key.is_platform and b is not None:
            detail["sources"] = [k.media_source for k in b]
        alerts.append(AlertOut(_record(key, inc, "firing", now_ms, json.dumps(detail)), key))
        assert o.state is not None
        out[key] = replace(o, state=replace(o.state, incident=replace(inc, notified=True, last_notified_ms=end)))
    return out, alerts


def slots(bucket_start_ms: int, bucket_ms: int) -> tuple[int, int]:
    """(slot of day, slot of week) of a bucket: the keys of its seasonal cells."""
    i = bucket_start_ms // bucket_ms
    per_day = 86_400_000 // bucket_ms
    return i % per_day, i % (per_day * 7)
