"""Silence judged from arrival. Pure: plain data in and out, no clock; the alerts app (alerts/arrivals_agent.py) feeds
it the ingress heartbeats (ingest/arrivals.py) in order and persists what it returns.

A source pages when the time since its last delivery makes "nothing at all" rarer than the false-alarm budget at the
source's usual rate λ. Silence counts only while an ingress was listening (heartbeats no further apart than a few
intervals): no heartbeat at all is the ingress down, not the source. Arrivals ~ Poisson(λ): a silence of g has
probability exp(-λg) and a week holds about λ·W gaps (one after every delivery), so silences that long come about
λ·W·exp(-λg) times a week; page when that is below ``false_alarms_per_week``, i.e. after g* = ln(λW/B)/λ
(B = 1: 1/min → 9.2 min, 4/min → 2.6 min, 1/hour → 5.1 h).

λ is the source's own hourly history, low side: the least of its last hours' rate and the median over previous days
of the lower of the same hour's and the next hour's rate (the night is judged by previous nights, the evening before a
quiet night by the quiet hour that follows; a slow weekend by its own last hours). Hours with an open incident or in
which no ingress listened teach nothing. One incident, one alert; it resolves at the first delivery after it.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

HOUR_MS = 3_600_000
WEEK_MS = 7 * 24 * HOUR_MS
METHOD = "arrivals"  # alert detail "method": how notify tells these from count-based alerts
SPANS = 3  # recent incidents remembered per source (count-based drops of the same stop are grouped under them)
History = dict[int, tuple[int, int]]  # hour index (epoch ms // HOUR_MS) -> (deliveries, ms some ingress listened)


@dataclass(frozen=True)
class Rules:
    false_alarms_per_week: float = 1.0
    min_days: int = 1  # previous days with history at this hour before a source can page
    history_days: int = 7
    recent_hours: int = 3
    gap_beats: float = 3.0  # heartbeats further apart than this many intervals: nobody listened in between
    min_cover: float = 0.5  # an hour teaches a rate when an ingress listened for at least this share of it


@dataclass(frozen=True)
class SourceBeat:
    n: int  # verified deliveries since the instance's previous heartbeat
    last_ms: int | None  # the instance's newest delivery
    mmp: str = ""
    app_id: str | None = None


@dataclass(frozen=True)
class Beat:
    instance: str
    at_ms: int
    interval_s: float
    sources: Mapping[str, SourceBeat]

    @classmethod
    def of(cls, rec: Mapping[str, Any]) -> Beat:
        """From the heartbeat record (ingest/arrivals.py); KeyError/TypeError/ValueError when it is not one."""
        src = {str(k): SourceBeat(int(v["n"]), None if v.get("last") is None else int(v["last"]),
                                  str(v.get("mmp") or ""), v.get("app_id"))
               for k, v in rec["sources"].items()}
        return cls(str(rec["instance"]), int(rec["at"]), float(rec["interval_s"]), src)


@dataclass(frozen=True)
class Incident:
    alert_id: str
    since_ms: int  # the last delivery (or when listening began): the silence's start
    last_ms: int | None  # the newest delivery when it fired: any newer one resolves it
    fired_ms: int
    rate_per_min: float
    p_value: float


@dataclass(frozen=True)
class Source:
    mmp: str = ""
    app_id: str | None = None
    first_ms: int = 0  # first heartbeat that listed it: no silence before
    seen_ms: int = 0  # newest heartbeat that listed it (a source gone from the config stops being judged)
    last_ms: int | None = None  # newest delivery any instance reported
    hour: int = 0  # the running hour's index, its deliveries and listened ms
    n: int = 0
    cover_ms: int = 0
    tainted: bool = False  # an incident was open during the running hour: it does not teach the rate
    incident: Incident | None = None
    spans: tuple[tuple[int, int | None], ...] = ()  # (since, resolved) of recent incidents, newest last

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Source:
        inc = d.get("incident")
        return cls(**{**d, "incident": Incident(**inc) if inc else None,
                      "spans": tuple((int(a), None if b is None else int(b)) for a, b in d.get("spans") or ())})


@dataclass(frozen=True)
class World:
    """What the judge carries between heartbeats (the per-source hourly history is kept apart: it changes hourly)."""

    last_beat_ms: int | None = None
    listening_since_ms: int | None = None  # start of the current unbroken run of heartbeats
    sources: Mapping[str, Source] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"last_beat_ms": self.last_beat_ms, "listening_since_ms": self.listening_since_ms,
                "sources": {k: v.to_dict() for k, v in self.sources.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> World:
        return cls(d.get("last_beat_ms"), d.get("listening_since_ms"),
                   {k: Source.from_dict(v) for k, v in (d.get("sources") or {}).items()})


@dataclass(frozen=True)
class Step:
    world: World
    history: dict[str, History]  # only the sources whose history changed (an hour rolled over)
    alerts: list[dict[str, Any]]  # records of schemas/alert.avsc


# --- the usual rate -------------------------------------------------------------------------------------------------

def _counts(hist: Mapping[int, tuple[int, int]], hours: Iterable[int], min_cover: float) -> tuple[int, int] | None:
    """(deliveries, listened ms) over the hours; None when an ingress listened to too little of them."""
    n = c = want = 0
    for h in hours:
        want += HOUR_MS
        got = hist.get(h)
        if got is not None:
            n, c = n + got[0], c + got[1]
    return (n, c) if c > 0 and c >= min_cover * want else None


def _lower(a: tuple[int, int], b: tuple[int, int]) -> float:
    """One rate from two samples: pooled, unless they differ by more than Poisson noise (|z| > Z), then the lower.
    Taking the lower of two noisy samples regardless would bias a steady source low (slower pages, ~-7% at 1/min)."""
    (n1, c1), (n2, c2) = a, b
    n, q = n1 + n2, c1 / (c1 + c2)
    if n == 0:
        return 0.0
    z = (n1 - n * q) / math.sqrt(max(n * q * (1 - q), 1e-9))
    return (n1 + n2) / (c1 + c2) if abs(z) <= Z else min(n1 / c1, n2 / c2)


Z = 2.0
FEW = 50  # deliveries: below this the same hours on previous days say more noise than rate (1/hour: ~14)
Z_RECENT = 3.0  # stricter: by chance alone 2.3% of steady 3-hour windows fall 2 sd low, and each one slows a page


def usual_rate(hist: Mapping[int, tuple[int, int]], hour: int, rules: Rules) -> float | None:
    """The low side of the source's usual delivery rate (per ms) at ``hour``; None while it has too little history.

    Per previous day, the hour and the next one (the silence being judged runs into it): pooled, or the lower when
    they clearly differ (nightfall); the median over the days; a week ago's instead when clearly lower (weekends).
    Scaled down when the last hours were clearly quieter than the same hours on those days (a slow day, a shrinking
    source); never up (a burst is not the norm). "Clearly": beyond Poisson noise, so a steady source is not biased
    low (each point of bias slows its page)."""
    days, before, counted = [], [], 0
    recent_hours = range(hour - rules.recent_hours, hour)
    for d in range(1, rules.history_days + 1):
        pair = [x for h in (hour - 24 * d, hour - 24 * d + 1) if (x := _counts(hist, (h,), rules.min_cover))]
        if pair:
            days.append(_lower(*pair) if len(pair) == 2 else pair[0][0] / pair[0][1])
            counted += sum(x[0] for x in pair)
        if (x := _counts(hist, (h - 24 * d for h in recent_hours), rules.min_cover)) is not None:
            before.append(x[0] / x[1])
    if len(days) < rules.min_days:
        return None
    recent = _counts(hist, recent_hours, rules.min_cover)
    if not days:
        return recent[0] / recent[1] if recent else None
    usual = statistics.median(days)
    if counted < FEW:  # too few deliveries in those hours to say anything hourly: the source's whole history
        n, c = sum(x[0] for x in hist.values()), sum(x[1] for x in hist.values())
        usual = min(usual, n / c)
    week = [x for h in (hour - 168, hour - 167) if (x := _counts(hist, (h,), rules.min_cover))]
    if week:  # the same hours a week ago, when clearly quieter (the first hours of a weekend)
        n, c = sum(x[0] for x in week), sum(x[1] for x in week)
        if _clearly_fewer(n, usual * c):
            usual = n / c
    if recent is not None and before:
        n, c = recent
        expected = statistics.median(before) * c
        if _clearly_fewer(n, expected):  # fewer lately than on those days: the level dropped
            return usual * n / expected
    return usual


def _clearly_fewer(n: int, expected: float) -> bool:
    return n < expected - Z_RECENT * math.sqrt(expected)


def silence_threshold_ms(rate_per_ms: float, rules: Rules) -> float:
    """g*: the silence after which "nothing at all" is rarer than the budget at this rate (inf: never)."""
    opportunities = rate_per_ms * WEEK_MS / rules.false_alarms_per_week
    return math.log(opportunities) / rate_per_ms if rate_per_ms > 0 and opportunities > 1 else math.inf


# --- one heartbeat --------------------------------------------------------------------------------------------------

def alert_id(source: str, since_ms: int) -> str:
    """Deterministic: a replayed heartbeat yields the same id."""
    return hashlib.sha1(f"arrivals|{source}|{since_ms}".encode()).hexdigest()[:16]


def _record(name: str, src: Source, inc: Incident, state: str, now_ms: int, rules: Rules) -> dict[str, Any]:
    silent_ms = (inc.fired_ms if state == "firing" else now_ms) - inc.since_ms
    expected = inc.rate_per_min * (inc.fired_ms - inc.since_ms) / 60_000
    detail = {"method": METHOD, "source": name, "mmp": src.mmp, "rate_per_min": round(inc.rate_per_min, 4),
              "silent_s": silent_ms // 1000, "since_delivery": inc.last_ms is not None,
              "per_week": inc.rate_per_min / 60_000 * WEEK_MS * inc.p_value,
              "false_alarms_per_week": rules.false_alarms_per_week, "feeds": [[name, src.mmp]]}
    return {"alert_id": inc.alert_id, "state": state, "direction": "drop", "severity": "critical",
            "scope": "source", "app_id": src.app_id, "media_source": None, "event_type": None,
            "observed": 0.0, "expected": round(expected, 3), "bucket_start": inc.since_ms,
            "bucket_end": now_ms, "created_at": now_ms, "resolved_at": now_ms if state == "resolved" else None,
            "p_value": inc.p_value, "detail": json.dumps(detail)}


def _roll(src: Source, hist: History, hour: int, rules: Rules) -> tuple[Source, History | None]:
    """Close the running hour into the history (unless an incident tainted it) and start ``hour``."""
    if hour <= src.hour:
        return src, None
    new = dict(hist)
    if not src.tainted and src.cover_ms > 0 and src.hour > 0:
        new[src.hour] = (src.n, src.cover_ms)
    keep_from = hour - 24 * rules.history_days - 1
    new = {h: v for h, v in new.items() if h >= keep_from}
    return replace(src, hour=hour, n=0, cover_ms=0, tainted=src.incident is not None), new


def step(world: World, history: Mapping[str, History], beat: Beat, rules: Rules) -> Step:
    """Apply one heartbeat: count, roll hours, judge every listened-for source; the alerts to send."""
    t = beat.at_ms
    gap_ms = rules.gap_beats * beat.interval_s * 1000
    if world.last_beat_ms is None or t - world.last_beat_ms > gap_ms:
        since, listened = t, 0  # (re)start of listening: the time before is nobody's silence
    else:
        since, listened = world.listening_since_ms or t, max(0, t - world.last_beat_ms)
    hour = t // HOUR_MS
    sources: dict[str, Source] = dict(world.sources)
    changed: dict[str, History] = {}
    alerts: list[dict[str, Any]] = []
    for name in sorted(set(sources) | set(beat.sources)):
        sb = beat.sources.get(name)
        src = sources.get(name) or Source(first_ms=t, hour=hour)
        if sb is None and t - src.seen_ms > WEEK_MS:
            del sources[name]  # gone from every ingress's configuration for a week: forget it
            changed[name] = {}
            continue
        src, hist = _roll(src, history.get(name, {}), hour, rules)
        if hist is not None:
            changed[name] = hist
        src = replace(src, cover_ms=src.cover_ms + listened)
        if sb is not None:
            last = sb.last_ms if src.last_ms is None or (sb.last_ms or 0) > src.last_ms else src.last_ms
            src = replace(src, n=src.n + sb.n, last_ms=last, seen_ms=t, mmp=sb.mmp or src.mmp,
                          app_id=sb.app_id if sb.app_id is not None else src.app_id)
        src, alert = judge(name, src, changed.get(name, history.get(name, {})), t, since, gap_ms, rules)
        if alert is not None:
            alerts.append(alert)
        sources[name] = src
    return Step(World(max(t, world.last_beat_ms or t), since, sources), changed, alerts)


def judge(name: str, src: Source, hist: Mapping[int, tuple[int, int]], t: int, listening_since: int,
          gap_ms: float, rules: Rules) -> tuple[Source, dict[str, Any] | None]:
    inc = src.incident
    if inc is not None:
        if src.last_ms is not None and (inc.last_ms is None or src.last_ms > inc.last_ms):
            spans = (*src.spans[:-1], (inc.since_ms, t)) if src.spans else ((inc.since_ms, t),)
            src = replace(src, incident=None, spans=spans[-SPANS:])
            return src, _record(name, src, inc, "resolved", t, rules)
        return src, None
    if t - src.seen_ms > gap_ms:
        return src, None  # no ingress lists this source any more (configuration changed): not judged
    rate = usual_rate(hist, t // HOUR_MS, rules)
    if rate is None or rate <= 0:
        return src, None
    anchor = max(x for x in (src.last_ms, src.first_ms, listening_since) if x is not None)
    silent = t - anchor
    if silent < silence_threshold_ms(rate, rules):
        return src, None
    p = math.exp(-rate * silent)
    new = Incident(alert_id(name, anchor), anchor, src.last_ms, t, rate * 60_000, p)
    src = replace(src, incident=new, tainted=True, spans=(*src.spans, (anchor, None))[-SPANS:])
    return src, _record(name, src, new, "firing", t, rules)


# --- one incident, one alert: count-based drops of a stopped source join its arrivals incident --------------------

def explains(spans: Mapping[str, Iterable[tuple[int, int | None]]], feeds: Iterable[Iterable[str]],
             start_ms: int, end_ms: int) -> bool:
    """True when every ingress source delivering a feed (``[[source, mmp], ...]``) had an arrivals incident overlapping
    [start_ms, end_ms): the count-based drop is that stop seen again ~2 buckets + lateness later."""
    srcs = [str(next(iter(f), "")) for f in feeds]
    if not srcs:
        return False
    return all(any(a < end_ms and (b is None or b > start_ms) for a, b in spans.get(s, ())) for s in srcs)


def open_incident(spans: Mapping[str, Iterable[tuple[int, int | None]]], feeds: Iterable[Iterable[str]]) -> bool:
    """Whether an arrivals incident of the feed's sources is still open."""
    return any(b is None for f in feeds for _, b in spans.get(str(next(iter(f), "")), ()))
