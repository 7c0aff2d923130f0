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
from functools import partial
from typing import Any, Literal

from alerts.calibrate import Tail, combined, decay_for, score_down, score_up
from alerts.config import Config, Mute, Thresholds

PLATFORM = "*"
SEP = "\x1f"
Direction = Literal["spike", "drop"]
LEVEL_ALPHA = 0.02  # slow (~4 h): the level ratio corrects seasonal profiles for growth, not for incidents
LEVEL_CLAMP = (0.5, 2.0)
SLOW_ALPHA = 0.05  # ~20-bucket memory: the silence timer's rate, where a 5-min slot estimate is too noisy
DISP_ALPHA = 0.02  # ~50-bucket memory of the dispersion estimate
INV_K_MIN, INV_K_MAX = 1e-3, 2.0  # k between 0.5 (wild) and 1000 (Poisson-like)
TESTS = 5  # spike and drop, per bucket and over the window, and the pair drop: the budget is shared between them
LOOKS = 2  # every bucket looks at runs of every length, and buckets next to each other are not independent: the
# budget is also shared between those looks (measured: without it a stationary series alerts ~2-3x its budget)
WEEK_MS = 7 * 86_400_000
SPARK = 36  # buckets of history a Slack alert draws (3 h at 5-min buckets)


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
    p_value: float  # calibrated rarity of what opened it (per bucket, for this series)
    buckets: int
    clean: int = 0
    notified: bool = False
    last_notified_ms: int = 0
    method: str = ""
    explained: bool = False  # part of a sent platform-wide alert or of its feed's alert: never announced on its own


NO_TAILS: tuple[tuple[float, ...], ...] = (Tail().astuple(),) * 5  # spike, drop, window spike, window drop, pair drop
PAIR = 4  # the pair stream: both of the last two buckets low, scored by the lesser down-score
PAIR_POWER = 2.0  # its prior: two independent buckets each at least this rare (calibrate.prior)


@dataclass(frozen=True)
class SeriesState:
    n: int = 0  # buckets learnt
    ewma: float | None = None
    slow: float | None = None
    level: float = 1.0  # observed / seasonal, smoothed (clean buckets only)
    inv_k: float | None = None  # 1/k of the series' own negative binomial, learnt from clean buckets
    tails: tuple[tuple[float, ...], ...] = NO_TAILS  # calibration of the five score streams (Tail.astuple)
    prev_down: float = 0.0  # the previous bucket's calibrated down-rarity as -log10 (the pair test's first bucket)
    silent_expected: float = 0.0  # expected events accumulated since the last observed event
    silent_rate: float = 0.0  # the expected rate when the silence began: zeros learnt since must not erode it
    last_seen_ms: int | None = None
    run_dir: Direction | None = None
    run: int = 0
    run_start_ms: int = 0
    run_observed: float = 0.0
    run_expected: float = 0.0
    run_ln: float = 0.0  # sum of ln(rarity) over the run
    run_max: float = 0.0  # the run's least rare bucket
    recent: tuple[tuple[float, float], ...] = ()  # (observed, expected) of the last window_buckets - 1 buckets
    last_resolved: tuple[str, int] | None = None  # (direction, end ms) of the last resolved incident
    spark: tuple[tuple[float, float, float], ...] = ()  # (observed, expected, sd) of the last SPARK buckets
    incident: Incident | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeriesState:
        inc = d.get("incident")
        lr = d.get("last_resolved")
        return cls(**{**d, "recent": tuple(tuple(x) for x in d.get("recent", ())),
                      "tails": (*(tuple(x) for x in d.get("tails", ())), *NO_TAILS)[:len(NO_TAILS)],
                      "last_resolved": tuple(lr) if lr else None, "incident": Incident(**inc) if inc else None,
                      "spark": tuple(tuple(x) for x in d.get("spark", ()))})

    def tail(self, i: int) -> Tail:
        return Tail.of(self.tails[i])


@dataclass(frozen=True)
class Check:
    """One bucket of one series judged: the per-bucket lean (verdict: rarer than ``abnormal_p`` for this series, or a
    decisive window/silence test) and everything ``explain`` shows."""

    verdict: Direction | None
    expected: float | None
    p_value: float  # calibrated rarity of the verdict (1.0 without one)
    method: str  # weekly|daily|ewma|warmup (baseline) or window|silence|pair (decisive tests)
    k: float | None = None  # dispersion used
    r_up: float = 1.0  # calibrated rarities: bucket above / below, window above / below
    r_down: float = 1.0
    w_up: float = 1.0
    w_down: float = 1.0
    pair: float = 1.0  # calibrated rarity of this and the previous bucket both as low as they are
    scores: tuple[float, ...] = (0.0,) * len(NO_TAILS)  # raw model scores of the five streams


DECISIVE = ("silence", "window", "pair")  # tests whose single verdict makes an alert


def alarm_p(th: Thresholds, bucket_ms: int) -> float:
    """The per-test rarity that makes an alert: the false-alarm budget spread over a week of buckets and the tests."""
    return th.false_alarms_per_week / (TESTS * LOOKS * WEEK_MS / bucket_ms)


def pair_rarity(tail: Tail, score: float) -> float:
    """The pair's calibrated rarity, never below twice what two independent calibrated buckets give (10^-2s): its
    history holds few pairs that low, and the prior alone, shared with the series' history, would undercut that."""
    return max(tail.rarity(score, PAIR_POWER), 2 * 10 ** (-PAIR_POWER * score))


def baseline(state: SeriesState, day: Cell, week: Cell, th: Thresholds) -> tuple[float | None, str]:
    """Expected count for the bucket and the method that produced it (None while warming up)."""
    if week.n >= th.min_seasons or day.n >= th.min_seasons:
        seasonal, method = (week.mean, "weekly") if week.n >= th.min_seasons else (day.mean, "daily")
        return seasonal * min(max(state.level, LEVEL_CLAMP[0]), LEVEL_CLAMP[1]), method
    if state.n < th.warmup_buckets or state.ewma is None:
        return None, "warmup"
    return state.ewma, "ewma"


def dispersion(state: SeriesState, th: Thresholds) -> float:
    inv = state.inv_k if state.inv_k is not None else 1.0 / th.dispersion_prior_k
    return 1.0 / max(inv, INV_K_MIN)


def assess(state: SeriesState, observed: int, day: Cell, week: Cell, th: Thresholds, bucket_ms: int) -> Check:
    """Score the bucket against the series' own model and calibrate the scores on the series' own history."""
    expected, method = baseline(state, day, week, th)
    if expected is None:
        return Check(None, None, 1.0, method)
    k = dispersion(state, th)
    # only the side the bucket leans to can be rare (the other side's score is ~0: skip its tail)
    s_up = score_up(observed, expected, k) if observed > expected else 0.0
    s_dn = score_down(observed, expected, k) if observed < expected else 0.0
    ws_up = ws_dn = 0.0
    w = th.window_buckets
    if w > 1 and len(state.recent) >= w - 1:
        obs = sum(o for o, _ in state.recent[-(w - 1):]) + observed
        exp_ = sum(e for _, e in state.recent[-(w - 1):]) + expected
        # a sum of w NB(mu, k) is close to NB(w mu, w k)
        ws_up = score_up(obs, exp_, k * w) if obs > exp_ else 0.0
        ws_dn = score_down(obs, exp_, k * w) if obs < exp_ else 0.0
    r_dn = state.tail(1).rarity(s_dn)
    # a stop or a deep drop shows in two buckets at once: the pair's score is the lesser of the two buckets'
    # *calibrated* down-rarities (as -log10), so a model that misjudges the series' spread is corrected first;
    # then calibrated again on the series' own pairs (isolated zero buckets, which many real series have, don't pair)
    s_pair = min(state.prev_down, -math.log10(max(r_dn, 1e-300))) if s_dn else 0.0
    r = (state.tail(0).rarity(s_up), r_dn,
         state.tail(2).rarity(ws_up) if ws_up else 1.0, state.tail(3).rarity(ws_dn) if ws_dn else 1.0,
         pair_rarity(state.tail(PAIR), s_pair) if s_pair else 1.0)
    mk = partial(Check, expected=expected, k=k, r_up=r[0], r_down=r[1], w_up=r[2], w_down=r[3], pair=r[4],
                 scores=(s_up, s_dn, ws_up, ws_dn, s_pair))
    alarm = alarm_p(th, bucket_ms)
    up_ok = observed - expected >= th.min_delta
    if expected < th.min_expected and observed == 0 and expected > 0:
        # silence timer for low-volume series: Poisson P(no event over the silent span) = exp(-sum of expected);
        # the rate from the slow EWMA too (a noisy slot estimate of a low count would fire falsely)
        rate = min(expected, state.slow if state.slow is not None else expected)
        p = math.exp(-(state.silent_expected + max(rate, state.silent_rate)))
        if p < th.silence_p_value:
            return mk(verdict="drop", p_value=p, method="silence")
    if r[4] < alarm and 2 * expected >= th.min_expected:
        return mk(verdict="drop", p_value=r[4], method="pair")
    # the window catches what no single bucket shows: not when the current bucket is itself abnormal (that is the
    # run's business, and a one-bucket burst must not fire through the window)
    if r[2] < alarm and up_ok and observed > expected and r[0] >= th.abnormal_p:
        return mk(verdict="spike", p_value=r[2], method="window")
    if r[3] < alarm and observed < expected and expected * w >= 3 * th.min_expected and r[1] >= th.abnormal_p:
        return mk(verdict="drop", p_value=r[3], method="window")
    if r[0] < th.abnormal_p and up_ok:
        return mk(verdict="spike", p_value=r[0], method=method)
    if r[1] < th.abnormal_p and expected >= th.min_expected:
        return mk(verdict="drop", p_value=r[1], method=method)
    return mk(verdict=None, p_value=1.0, method=method)


def learn(state: SeriesState, observed: int, check: Check, day: Cell, week: Cell, bucket_end_ms: int,
          th: Thresholds, bucket_ms: int, frozen: bool = False, ctx: tuple[Cell, Cell] | None = None,
          ) -> tuple[SeriesState, Cell, Cell]:
    """Move the baseline, the dispersion and the calibration with a clean bucket. Abnormal buckets, buckets of an
    open incident, and ``frozen`` ones (the platform-wide series is abnormal: this source's bucket says nothing about
    its own normal) leave the baseline where it was: no burst echoes a day or a week later."""
    exp_ = check.expected or 0.0
    srate = min(exp_, state.slow if state.slow is not None else exp_)
    if check.expected is not None and th.window_buckets > 1:
        # a bucket the per-bucket test already flagged enters the window as neutral: its burst must not echo
        # through the next W buckets as a second alert
        x = float(observed) if not frozen and (check.verdict is None or check.method == "window") else exp_
        state = replace(state, recent=(*state.recent, (x, exp_))[-(th.window_buckets - 1):])
    seen: int | None
    if observed > 0:
        silent, rate, seen = 0.0, 0.0, bucket_end_ms
    else:
        rate = state.silent_rate if state.silent_expected > 0 else srate
        silent, seen = state.silent_expected + max(srate, rate), state.last_seen_ms
    sd0 = math.sqrt(exp_ + exp_ * exp_ / dispersion(state, th)) if check.expected is not None else 0.0
    pt = (float(observed), round(exp_ if check.expected is not None else observed, 2), round(sd0, 2))
    state = replace(state, silent_expected=silent, silent_rate=rate, last_seen_ms=seen,
                    spark=(*state.spark, pt)[-SPARK:],
                    prev_down=-math.log10(max(check.r_down, 1e-300)) if check.expected is not None else 0.0)
    if frozen or state.incident is not None:
        return state, day, week
    if check.verdict is not None:  # a rare bucket teaches the calibration (``calibrate``), never the baseline
        return state, day, week
    x = float(observed)
    inv_k = state.inv_k
    if check.expected is not None:
        # winsorize at 3 sd of the series' own spread: a burst that stayed under the alert must not inflate the
        # baseline (and read as a drop when it ends); a real level shift still gets in, 3 sd per bucket
        k = dispersion(state, th)
        sd = math.sqrt(exp_ + exp_ * exp_ / k)
        x = min(max(x, exp_ - 3 * sd - 1), exp_ + 3 * sd + 1)
        if exp_ >= 1:  # method of moments on a clipped residual: Var = mu + mu^2 / k
            res = min(max(observed - exp_, -4 * sd), 4 * sd)
            a = DISP_ALPHA * min(1.0, exp_ / 10)
            inv = state.inv_k if state.inv_k is not None else 1.0 / th.dispersion_prior_k
            inv_k = min(max(inv + a * ((res * res - exp_) / (exp_ * exp_) - inv), INV_K_MIN), INV_K_MAX)
    a = th.ewma_alpha
    ewma = x if state.ewma is None else (1 - a) * state.ewma + a * x
    slow = x if state.slow is None else (1 - SLOW_ALPHA) * state.slow + SLOW_ALPHA * x
    level = state.level
    cday, cweek = ctx or (day, week)
    seasonal = cweek.mean if cweek.n >= th.min_seasons else cday.mean if cday.n >= th.min_seasons else None
    if seasonal is not None:
        level = (1 - LEVEL_ALPHA) * level + LEVEL_ALPHA * (x + 1) / (seasonal + 1)
    st = replace(state, n=state.n + 1, ewma=ewma, slow=slow, level=level, inv_k=inv_k)
    return st, day.update(x, th.season_alpha), week.update(x, th.season_alpha)


def calibrate(before: SeriesState, after: SeriesState, check: Check, th: Thresholds, bucket_ms: int,
              frozen: bool = False) -> SeriesState:
    """Enter the bucket's scores into the series' own tails: every bucket of normal life, rare ones (bursts, missing
    buckets) included: that is what calibrates them. Not a bucket inside an incident, nor the one that opened it:
    an incident that taught the calibration would make the next one "common for this series"."""
    if frozen or check.expected is None or before.incident is not None or after.incident is not None:
        return after
    decay = decay_for(th.calibration_halflife_days * 86_400_000 / bucket_ms)
    return replace(after, tails=tuple(after.tail(i).update(sc, decay).astuple() for i, sc in enumerate(check.scores)))


def alert_id(key: SeriesKey, direction: str, start_ms: int) -> str:
    """Deterministic, so a re-evaluated bucket (at-least-once replay) yields the same id."""
    return hashlib.sha1(f"{key.encode()}|{direction}|{start_ms}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Transition:
    kind: Literal["fired", "resolved"]
    incident: Incident


def fires(st: SeriesState, check: Check, bucket_start_ms: int, bucket_ms: int, th: Thresholds) -> bool:
    """Does the current run make an alert? A decisive test (silence, window) does at once; a run of rare buckets does
    once it is >= fire_after long and its combined rarity is under the budget."""
    if st.last_resolved is not None and st.run_dir != st.last_resolved[0] and (
            bucket_start_ms - st.last_resolved[1] < th.recover_after * bucket_ms):
        return False  # the other side of a just-resolved incident (a burst's decay) is not a new incident
    if check.method in DECISIVE:
        return True
    return st.run >= th.fire_after and run_p(st) < alarm_p(th, bucket_ms)


def run_p(st: SeriesState) -> float:
    """How rare the current run is: the better of Fisher's product (a few very rare buckets) and "every bucket at
    most this rare" (max^n: a sustained moderate change), x2 for trying both."""
    return min(1.0, 2 * min(combined(st.run_ln, st.run), st.run_max ** st.run))


def advance(st: SeriesState, state_key: SeriesKey, observed: int, check: Check, bucket_start_ms: int,
            bucket_ms: int, th: Thresholds) -> tuple[SeriesState, Transition | None]:
    """Open an incident on a run rare enough for this series; keep it open through the burst and its decay (any
    abnormal bucket, either way); resolve after recover_after clean buckets in a row."""
    end = bucket_start_ms + bucket_ms
    inc = st.incident
    if inc is None:
        if check.verdict is None or check.expected is None:
            return replace(st, run_dir=None, run=0, run_observed=0.0, run_expected=0.0, run_ln=0.0, run_max=0.0), None
        ln_r = math.log(max(check.p_value, 1e-300))
        if st.run_dir == check.verdict:
            st = replace(st, run=st.run + 1, run_observed=st.run_observed + observed,
                         run_expected=st.run_expected + check.expected, run_ln=st.run_ln + ln_r,
                         run_max=max(st.run_max, check.p_value))
        else:
            st = replace(st, run_dir=check.verdict, run=1, run_start_ms=bucket_start_ms, run_observed=float(observed),
                         run_expected=check.expected, run_ln=ln_r, run_max=check.p_value)
        if not fires(st, check, bucket_start_ms, bucket_ms, th):
            return st, None
        assert st.run_dir is not None
        p = check.p_value if check.method in DECISIVE else run_p(st)
        new = Incident(alert_id(state_key, st.run_dir, st.run_start_ms), st.run_dir, st.run_start_ms, end,
                       st.run_observed, st.run_expected, p, st.run, method=check.method)
        return replace(st, incident=new), Transition("fired", new)
    if check.expected is not None and check.verdict is not None:
        if check.verdict == inc.direction:
            inc = replace(inc, end_ms=end, observed=inc.observed + observed, expected=inc.expected + check.expected,
                          p_value=min(inc.p_value, check.p_value), buckets=inc.buckets + 1, clean=0)
        else:
            inc = replace(inc, clean=0)  # the decay (or the rebound) of this incident: still this incident
        return replace(st, incident=inc), None
    inc = replace(inc, clean=inc.clean + 1)
    if inc.clean >= th.recover_after:
        return replace(st, incident=None, run_dir=None, run=0, run_observed=0.0, run_expected=0.0, run_ln=0.0,
                       run_max=0.0, last_resolved=(inc.direction, end)), Transition("resolved", inc)
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
    near_day: tuple[Cell, ...] = ()  # the slots around (see ``neighbours``): the baseline averages them
    near_week: tuple[Cell, ...] = ()


SMOOTH = 2  # a seasonal slot's baseline averages the slots +-2 around it: 5x the history, same shape for a smooth day


def neighbours(slot: int, per: int) -> list[int]:
    return [(slot + i) % per for i in range(-SMOOTH, SMOOTH + 1) if i]


def smoothed(own: Cell, near: tuple[Cell, ...]) -> Cell:
    """The own slot's readiness (seasons seen), the mean of it and its learnt neighbours."""
    cells = [own, *(c for c in near if c.n > 0)] if own.n > 0 else [own]
    return Cell(sum(c.mean for c in cells) / len(cells), own.n)


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
        # when it was resolved, on created_at's clock (the incident's own end is bucket_end): an event-time end here
        # read as earlier than the firing row's created_at (lateness, a catch-up), e.g. resolved_at < fired_at
        "resolved_at": now_ms if state == "resolved" else None, "p_value": inc.p_value, "detail": detail,
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
            e, _ = baseline(si.state, smoothed(si.day, si.near_day), smoothed(si.week, si.near_week), th)
            if e is not None and e >= 1 and si.observed <= 0.5 * e:
                low[key.group] = low.get(key.group, 0) + 1
    for key in sorted(series, key=lambda k: (not k.is_platform, k)):  # platform first: sources look at it
        si = series[key]
        th = cfg.thresholds_for(key.media_source)
        ctx_day, ctx_week = smoothed(si.day, si.near_day), smoothed(si.week, si.near_week)
        check = assess(si.state, si.observed, ctx_day, ctx_week, th, cfg.bucket_ms)
        frozen = False
        if not key.is_platform and key.platform() in out and low.get(key.group, 0) >= cfg.platform_min_sources:
            p = out[key.platform()]
            frozen = p.check.verdict == "drop" or (p.state is not None and p.state.incident is not None
                                                   and p.state.incident.direction == "drop")
        st, day, week = learn(si.state, si.observed, check, si.day, si.week, end, th, cfg.bucket_ms, frozen,
                              (ctx_day, ctx_week))
        st, tr = advance(st, key, si.observed, check, bucket_start_ms, cfg.bucket_ms, th)
        st = calibrate(si.state, st, check, th, cfg.bucket_ms, frozen)
        if tr is not None:
            transitions[key] = tr
        expired = (st.incident is None and st.last_seen_ms is not None and end - st.last_seen_ms > cfg.series_ttl_ms)
        out[key] = SeriesOutput(None if expired else st, day, week, check)

    def abnormal(key: SeriesKey, d: str) -> bool:  # an incident (open, or just fired), not a single rare bucket
        o = out[key]
        inc = o.state.incident if o.state else None
        return (inc is not None and inc.direction == d) or (
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
    pending: list[tuple[SeriesKey, Incident, dict[str, Any]]] = []  # due to be sent, before grouping by feed
    # platform series first, so the per-source decisions below see whether the platform alert went out
    for key in sorted(out, key=lambda k: (not k.is_platform, k)):
        o = out[key]
        tr = transitions.get(key)
        if tr is not None and tr.kind == "resolved":
            if tr.incident.notified:
                dur = tr.incident.end_ms - tr.incident.start_ms
                spark = [list(x) for x in o.state.spark] if o.state is not None else []
                alerts.append(AlertOut(_record(key, tr.incident, "resolved", now_ms, json.dumps(
                    {"buckets": tr.incident.buckets, "duration_s": dur // 1000, "method": tr.incident.method,
                     "spark": spark, "bucket_s": cfg.bucket_ms // 1000})), key))
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
        # first notice only while still abnormal its own way: an incident a suppression or mute held back and that
        # is already recovering (or decaying) is stale news
        # a reminder only while it still goes on (not while it is recovering)
        due = inc.end_ms == end and (not inc.notified or end - inc.last_notified_ms >= cfg.repeat_ms)
        if not due:
            continue
        assert o.state is not None
        detail: dict[str, Any] = {"buckets": inc.buckets, "method": inc.method, "repeat": inc.notified,
                                  "spark": [list(x) for x in o.state.spark], "bucket_s": cfg.bucket_ms // 1000}
        if key.is_platform and b is not None:
            detail["sources"] = [k.media_source for k in b]
        pending.append((key, inc, detail))

    def mark(key: SeriesKey, **changes: Any) -> None:
        o = out[key]
        assert o.state is not None and o.state.incident is not None
        out[key] = replace(o, state=replace(o.state, incident=replace(o.state.incident, **changes)))

    def send(key: SeriesKey, inc: Incident, detail: dict[str, Any]) -> None:
        alerts.append(AlertOut(_record(key, inc, "firing", now_ms, json.dumps(detail)), key))
        mark(key, notified=True, last_notified_ms=end)

    # one feed (app, source) that stops or drops shows in every event type it carries: one page, one resolve.
    # An incident of a feed already paged joins it silently; new ones of the same bucket go out as one alert,
    # led by the busiest event type
    paged = {feed(k, o.state.incident.direction) for k, o in out.items() if o.state is not None
             and o.state.incident is not None and o.state.incident.notified and not o.state.incident.explained}
    first: dict[tuple[str, str, str], list[tuple[SeriesKey, Incident, dict[str, Any]]]] = {}
    for key, inc, detail in pending:
        if inc.notified:
            send(key, inc, detail)
        else:
            first.setdefault(feed(key, inc.direction), []).append((key, inc, detail))
    for f, items in first.items():
        items.sort(key=lambda x: (-x[1].expected, x[0]))
        lead = None if f in paged else items[0]
        for key, _, _ in items:
            if lead is None or key != lead[0]:
                mark(key, explained=True)
        if lead is not None:
            lead[2]["event_types"] = sorted({k.event_type for k, _, _ in items})
            send(*lead)
    return out, alerts


def feed(key: SeriesKey, direction: str) -> tuple[str, str, str]:
    """The incident's feed: every event type an app receives from one media source (or all of them)."""
    return (key.app_id, key.media_source, direction)


def slots(bucket_start_ms: int, bucket_ms: int) -> tuple[int, int]:
    """(slot of day, slot of week) of a bucket: the keys of its seasonal cells."""
    i = bucket_start_ms // bucket_ms
    per_day = 86_400_000 // bucket_ms
    return i % per_day, i % (per_day * 7)
