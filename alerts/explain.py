"""`attrib alerts explain`: replay one series' stored counts through the detector and say, per bucket, what it expected,
how rare the bucket was for the series and why it did or did not alert. Pure: counts in, rows and text out (the
command in ops/alerts.py fetches the counts from the warehouse). One series alone: the platform-wide suppression and
mutes, which need the other series, are not replayed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from alerts.config import Config
from alerts.detector import (
    PLATFORM,
    Cell,
    Check,
    SeriesKey,
    SeriesState,
    advance,
    alarm_p,
    assess,
    learn,
    neighbours,
    run_p,
    slots,
    smoothed,
)


@dataclass(frozen=True)
class Row:
    bucket_ms: int
    observed: int
    check: Check
    why: str
    event: str = ""  # "fired" | "resolved"


def _one_in(p: float) -> str:
    return f"1 in {1 / p:,.0f}" if p > 0 else "never seen"


def explain(counts: dict[int, int], start_ms: int, end_ms: int, cfg: Config, key: SeriesKey) -> list[Row]:
    """Every bucket from start_ms to end_ms (missing ones are zeros), learnt in order; the rows of all of them."""
    th = cfg.thresholds_for(key.media_source)
    b_ms = cfg.bucket_ms
    per_day = 86_400_000 // b_ms
    alarm = alarm_p(th, b_ms)
    st, rows = SeriesState(), []
    cells: dict[tuple[str, int], Cell] = {}
    for b in range(start_ms - start_ms % b_ms, end_ms, b_ms):
        n = counts.get(b, 0)
        d, w = slots(b, b_ms)
        day, week = cells.get(("d", d), Cell()), cells.get(("w", w), Cell())
        near = (tuple(cells.get(("d", x), Cell()) for x in neighbours(d, per_day)),
                tuple(cells.get(("w", x), Cell()) for x in neighbours(w, 7 * per_day)))
        ctx = (smoothed(day, near[0]), smoothed(week, near[1]))
        c = assess(st, n, ctx[0], ctx[1], th, b_ms)
        was_open = st.incident
        st2, day, week = learn(st, n, c, day, week, b + b_ms, th, b_ms, ctx=ctx)
        st2, tr = advance(st2, key, n, c, b, b_ms, th)
        cells[("d", d)], cells[("w", w)] = day, week
        if c.expected is None:
            why = f"warming up: {st.n} of {th.warmup_buckets} buckets learnt, no seasonal history yet"
        elif tr is not None and tr.kind == "fired":
            how = c.method if c.method in ("silence", "window") else f"a run of {st2.run} buckets"
            why = (f"ALERT {tr.incident.direction}: {how}, rarity {tr.incident.p_value:.1e} < budget {alarm:.1e} "
                   f"({th.false_alarms_per_week:g} false alarms/week)")
        elif tr is not None:
            why = f"RESOLVED: {th.recover_after} clean buckets in a row"
        elif was_open is not None:
            inc = st2.incident
            why = (f"incident ({was_open.direction}) still open: " +
                   (f"{inc.clean} of {th.recover_after} clean buckets" if inc and inc.clean else "abnormal bucket"))
        elif c.verdict is not None:
            why = (f"abnormal {c.verdict} ({_one_in(c.p_value)} buckets here), run of {st2.run}: run rarity "
                   f"{run_p(st2):.1e} not under the budget {alarm:.1e}" + (" yet" if st2.run < th.fire_after else ""))
        else:
            r = min(c.r_up, c.r_down)
            why = f"normal: {_one_in(r)} buckets here (abnormal below 1 in {1 / th.abnormal_p:,.0f})"
        rows.append(Row(b, n, c, why, tr.kind if tr else ""))
        st = st2
    return rows


def render(rows: list[Row], since_ms: int, all_rows: bool = False) -> str:
    """One line per bucket from since_ms: time, observed, expected, score, rarity, why. Without all_rows, normal
    buckets are left out."""
    out = [f"{'bucket (UTC)':<17}{'obs':>7}{'expected':>10}{'score':>7}{'rarity':>9}  why"]
    for r in rows:
        if r.bucket_ms < since_ms or (not all_rows and r.check.verdict is None and not r.event
                                      and not r.why.startswith("incident")):
            continue
        c = r.check
        exp = f"{c.expected:.1f}" if c.expected is not None else "-"
        score = max(c.scores[0], c.scores[1])
        rar = min(c.r_up, c.r_down)
        t = datetime.fromtimestamp(r.bucket_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
        out.append(f"{t:<17}{r.observed:>7}{exp:>10}{score:>7.1f}{rar:>9.1e}  {r.why}")
    return "\n".join(out)


def counts_sql(database: str, key: SeriesKey, bucket_s: int, since_s: int) -> str:
    """Counts per bucket of one series from the analysts' events table (``*`` = every media source)."""

    def q(s: str) -> str:
        return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"

    where = [f"app_id = {q(key.app_id)}", f"event_type = {q(key.event_type)}",
             f"event_time >= now64(3) - INTERVAL {int(since_s)} SECOND"]
    if key.media_source != PLATFORM:
        where.append(f"media_source = {q(key.media_source)}")
    return (f"SELECT toUInt64(toUnixTimestamp(toStartOfInterval(event_time, INTERVAL {bucket_s} SECOND))) * 1000 AS b, "
            f"count() AS n FROM {database}.events FINAL WHERE " + " AND ".join(where) + " GROUP BY b ORDER BY b")
