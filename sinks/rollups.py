"""Daily rollups rebuilt from ``events FINAL``, one day at a time, swapped in atomically.

Why rebuild instead of an incremental materialized view: an MV aggregates each inserted block, so a token-less
replay inflates it, and a correction (a pending purchase later attributed) would stay counted under the old
attribution too — aggregates cannot subtract. A rebuild reads the deduplicated latest version of every event of a
day, so it is correct by construction however often a batch is retried or corrected; the sink rebuilds only the
days its loads touched, at most every ``sink.rollup_refresh_s``.

Mechanics: aggregate the days into a private staging table with the rollups' exact layout, then ``REPLACE
PARTITION`` each day (a partition = a day) into ``daily_rollups``: readers see the old day or the new one, never a
half-built day.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from attrib.errors import AttribError
from schemas.partners import SQL_KEY
from sinks import clickhouse

log = logging.getLogger("attrib.sink.rollups")
# The refresher rebuilds for at most this share of the time. A rebuild re-reads the whole day, so its cost per
# delivery grows with the day: at 1,000 deliveries/s a 300k-event day costs ~0.4 CPU-s per rebuild (bench/rollups.py),
# 0.2 ms per delivery every 2 s — half the sink's CPU. A tenth (was a third) keeps that to ~0.05 ms for a day that
# size and ~10% of a core for any day, the rollups then trailing the events by about ten rebuilds' time.
BUSY_SHARE = 0.1

COLUMNS = ("day", "app_id", "media_source", "campaign", "ad_set", "platform", "partner_id", "partner_name",
           "partner_mapped", "reporting_currency", "installs", "reinstalls", "signups", "purchases", "revenue",
           "revenue_reporting", "purchases_unconverted", "users", "users_state", "events")

# Attribution dimensions: the user's first touch (install attribution) as a whole when there is one — never mixed
# with the event's own fields (an organic user's purchase may carry a network's campaign) — else what the event
# itself carried. '' = not attributed (yet): pending or unattributed events stay visible instead of disappearing.
# The canonical partner of that media source comes from the newest partner_map generation (schemas/partners.py);
# a value it lacks is its own partner (its key), flagged partner_mapped = 0.
# Revenue in the reporting currency {rep}: as sent when already in {rep}; else the MMP's own USD figure when {rep} is
# USD (AppsFlyer event_revenue_usd, Adjust revenue_usd / revenue_usd_cents); else times the fx_daily factor of the
# event's day; else NULL — counted in purchases_unconverted and left out of revenue_reporting, never guessed.
ATTR_MEDIA_SOURCE = "ifNull(if(first_touch_media_source IS NOT NULL, first_touch_media_source, media_source), '')"
# Cost (bench/e2e.py: a rebuild re-reads the whole day every few seconds): the partner key's regexes run once per
# distinct media source of a block (a LowCardinality column's dictionary), not once per event, and the MMP's USD
# figure is parsed out of ``properties`` only for the purchases that need it (multiIf/if evaluate lazily).
MMP_USD = """multiIf(
        mmp = 'appsflyer', toDecimal128OrNull(trim(BOTH '"' FROM JSONExtractRaw(properties, 'event_revenue_usd')), 9),
        mmp = 'adjust', coalesce(
            toDecimal128OrNull(trim(BOTH '"' FROM JSONExtractRaw(properties, 'revenue_usd')), 9),
            toDecimal128OrNull(trim(BOTH '"' FROM JSONExtractRaw(properties, 'revenue_usd_cents')), 9) / 100),
        NULL)"""
REPORTING_REVENUE = """multiIf(
        amount IS NULL OR cur IS NULL, NULL,
        cur = {rep:String}, toNullable(toDecimal128(assumeNotNull(amount), 6)),
        {rep:String} = 'USD' AND mmp_usd IS NOT NULL, toNullable(toDecimal128(assumeNotNull(mmp_usd), 6)),
        fx_ok = 1, toNullable(toDecimal128(assumeNotNull(amount) * fx_factor, 6)),
        NULL)"""
PARTNER_JOIN = """LEFT JOIN (SELECT key AS pm_key, partner_id AS pm_id, partner_name AS pm_name FROM {db}.partner_map
           WHERE generation = (SELECT max(generation) FROM {db}.partner_map)) AS pm ON pm.pm_key = e.partner_key"""
FX_JOIN = """LEFT JOIN (SELECT day AS fx_day, currency AS fx_currency, factor AS fx_factor, ok AS fx_ok
           FROM {db}.fx_daily
           WHERE reporting = {rep:String}
             AND generation = (SELECT max(generation) FROM {db}.fx_daily WHERE reporting = {rep:String})) AS fx
          ON fx.fx_day = e.day AND fx.fx_currency = e.cur"""
SELECT = f"""
SELECT
    day, app_id, media_source, campaign, ad_set, platform,
    if(media_source = '', '', if(pm_id != '', pm_id, partner_key))                      AS partner_id,
    if(media_source = '', '', if(pm_id != '', pm_name, media_source))                   AS partner_name,
    toUInt8(media_source = '' OR pm_id != '')                                           AS partner_mapped,
    {{rep:String}}                                                                     AS reporting_currency,
    countIf(event_type = 'install')                                                     AS installs,
    countIf(event_type = 'reinstall')                                                   AS reinstalls,
    countIf(event_type = 'signup')                                                      AS signups,
    countIf(event_type = 'purchase')                                                    AS purchases,
    sumMapIf(map(assumeNotNull(cur), toDecimal128(assumeNotNull(amount), 6)),
             event_type = 'purchase' AND amount IS NOT NULL AND cur IS NOT NULL)        AS revenue,
    toDecimal128(sumIf(assumeNotNull(revenue_rep), event_type = 'purchase' AND revenue_rep IS NOT NULL), 6)
                                                                                        AS revenue_reporting,
    countIf(event_type = 'purchase' AND amount IS NOT NULL AND cur IS NOT NULL AND revenue_rep IS NULL)
                                                                                        AS purchases_unconverted,
    uniqExact(user_key)                                                                 AS users,
    uniqState(user_key)                                                                 AS users_state,
    count()                                                                             AS events
FROM (
    SELECT
        e.*, pm_id, pm_name, fx_factor, fx_ok,
        {REPORTING_REVENUE} AS revenue_rep
    FROM (
        SELECT
            toDate(event_time) AS day, app_id, event_type, revenue AS amount, currency AS cur, user_key,
            toLowCardinality({ATTR_MEDIA_SOURCE}) AS media_source,
            ifNull(if(first_touch_media_source IS NOT NULL, first_touch_campaign, campaign), '')         AS campaign,
            ifNull(if(first_touch_media_source IS NOT NULL, first_touch_ad_set, ad_set), '')             AS ad_set,
            coalesce(platform, '')                                                                       AS platform,
            if(event_type = 'purchase' AND revenue IS NOT NULL AND currency IS NOT NULL
               AND currency != {{rep:String}} AND {{rep:String}} = 'USD', {MMP_USD}, NULL) AS mmp_usd,
            {{partner_key}} AS partner_key
        FROM {{db}}.events FINAL
        WHERE event_time >= {{lo:DateTime64(3, 'UTC')}} AND event_time < {{hi:DateTime64(3, 'UTC')}}
          AND toDate(event_time) IN {{days:Array(Date)}}
    ) AS e
    {PARTNER_JOIN}
    {FX_JOIN}
)
GROUP BY day, app_id, media_source, campaign, ad_set, platform, partner_id, partner_name, partner_mapped
""".replace("{partner_key}", SQL_KEY.replace("{v}", f"toLowCardinality({ATTR_MEDIA_SOURCE})"))


def refresh(client: Client, database: str, days: Iterable[date], settings: dict[str, Any] | None = None,
            reporting: str = "USD") -> int:
    """Rebuild ``daily_rollups`` for ``days``; return the number of rollup rows written. ``settings`` go with the
    rebuild's aggregation (the expensive part); ``reporting`` is the currency revenue is converted to."""
    days = sorted(set(days))
    if not days:
        return 0
    staging = f"{database}.daily_rollups_staging_{uuid.uuid4().hex[:12]}"
    client.command(
        f"CREATE TABLE {staging} AS {database}.daily_rollups ENGINE = MergeTree "
        "PARTITION BY toYYYYMMDD(day) ORDER BY (app_id, day, media_source, campaign, ad_set, platform)")
    try:
        lo = datetime.combine(days[0], datetime.min.time(), UTC)
        hi = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), UTC)
        client.command(
            f"INSERT INTO {staging} ({', '.join(COLUMNS)}) " + SELECT.replace("{db}", database),
            parameters={"lo": lo, "hi": hi, "days": days, "rep": reporting},
            settings={"async_insert": 0, **(settings or {})})
        counted = client.query(f"SELECT day, count() FROM {staging} GROUP BY day").result_rows
        built: dict[date, int] = {d: n for d, n in counted}
        for d in days:
            if d in built:
                client.command(f"ALTER TABLE {database}.daily_rollups REPLACE PARTITION {d:%Y%m%d} FROM {staging}")
            else:  # no events that day (any more): the day's rollup must be empty too
                client.command(f"ALTER TABLE {database}.daily_rollups DROP PARTITION {d:%Y%m%d}")
        return sum(built.values())
    finally:
        client.command(f"DROP TABLE IF EXISTS {staging}")


class Refresher:
    """Rebuilds the days recorded in ``rollup_dirty_days`` every ``interval_s``, in its own thread and with its own
    client, so loading never waits for a rebuild. ``margin_s`` re-reads recently touched days, covering inserts by
    other sink processes whose clocks or commits interleave with ours (a rebuild too many is harmless)."""

    def __init__(self, connect: Callable[[], Client], database: str, interval_s: float, margin_s: float = 10.0,
                 query_settings: dict[str, Any] | None = None, reporting: str = "USD"):
        self._connect = connect
        self.reporting = reporting
        self.db = database
        self.query_settings = query_settings or {}
        self.interval_s = interval_s
        self.margin_s = margin_s
        self.watermark: datetime | None = None
        self.settled_at = 0.0  # wall-clock start of the last completed round: later loads are not in it yet
        self.refreshes = self.failures = 0
        self.unmapped_partners = self.unmapped_events = self.unconverted_purchases = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Client | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="attrib-rollups", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._client is not None:
            self._client.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            took = time.monotonic()
            try:
                with clickhouse.calls():
                    self.run_once()
            except AttribError as exc:  # warehouse down or refusing: the days stay recorded, try next round
                self.failures += 1
                self.last_error = str(exc)[:300]
                log.error("rollup refresh failed; will retry", extra={"fields": {"error": self.last_error}})
                if self._client is not None:
                    clickhouse.close(self._client)
                    self._client = None
            # rebuilding grows with the day's size (it re-reads the whole day): at most BUSY_SHARE of the time
            self._stop.wait(max(self.interval_s, (time.monotonic() - took) * (1 / BUSY_SHARE - 1)))

    def prometheus(self) -> str:
        return (f"attrib_sink_unmapped_partners {self.unmapped_partners}\n"
                f"attrib_sink_unmapped_partner_events {self.unmapped_events}\n"
                f"attrib_sink_unconverted_purchases {self.unconverted_purchases}\n")

    def run_once(self) -> int:
        started = time.time()
        if self._client is None:
            self._client = self._connect()
        c = self._client
        if self.watermark is None:  # first round: whatever was touched since the last rebuild (crash leftovers)
            last = c.query(f"SELECT max(refreshed_at) FROM {self.db}.daily_rollups").result_rows[0][0]
            self.watermark = (_utc(last) if last else datetime(1970, 1, 1, tzinfo=UTC)) \
                - timedelta(minutes=5)
        since = self.watermark - timedelta(seconds=self.margin_s)
        rows = c.query(f"SELECT day, max(touched_at) FROM {self.db}.rollup_dirty_days "
                       "WHERE touched_at > {since:DateTime64(3, 'UTC')} GROUP BY day",
                       parameters={"since": since}).result_rows
        written = 0
        if rows:
            written = refresh(c, self.db, [d for d, _ in rows], self.query_settings, self.reporting)
            self.watermark = max(self.watermark, *(_utc(t) for _, t in rows))
            self.refreshes += 1
            self.unmapped_partners, self.unmapped_events, self.unconverted_purchases = quality(c, self.db)
        self.settled_at = started
        return written


def quality(client: Client, database: str) -> tuple[int, int, int]:
    """(distinct unmapped partner values, their events, purchases without a rate) over all rollups — the gauges an
    operator watches to extend schemas/partners.csv or load missing FX rates."""
    r = client.query(f"SELECT uniqExactIf(partner_id, partner_mapped = 0), sumIf(events, partner_mapped = 0), "
                     f"sum(purchases_unconverted) FROM {database}.daily_rollups").result_rows[0]
    return int(r[0]), int(r[1]), int(r[2])


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def mark_dirty(client: Client, database: str, days: Iterable[date]) -> None:
    """Record days loaded by the row path (the fast path's view records its own)."""
    days = sorted(set(days))
    if days:
        client.insert(f"{database}.rollup_dirty_days", [[d] for d in days], column_names=["day"],
                      settings={"async_insert": 0})
