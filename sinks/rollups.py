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

import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone

from clickhouse_connect.driver.client import Client

COLUMNS = ("day", "app_id", "media_source", "campaign", "ad_set", "platform", "installs", "reinstalls", "signups",
           "purchases", "revenue", "users", "users_state", "events")

# Attribution dimensions: the user's first touch (install attribution), else what the event itself carried.
# '' = not attributed (yet): pending or unattributed events stay visible instead of silently disappearing.
SELECT = """
SELECT
    toDate(event_time)                                                     AS day,
    app_id,
    coalesce(first_touch_media_source, media_source, '')                   AS media_source,
    coalesce(first_touch_campaign, campaign, '')                           AS campaign,
    coalesce(first_touch_ad_set, ad_set, '')                               AS ad_set,
    coalesce(platform, '')                                                 AS platform,
    countIf(event_type = 'install')                                        AS installs,
    countIf(event_type = 'reinstall')                                      AS reinstalls,
    countIf(event_type = 'signup')                                         AS signups,
    countIf(event_type = 'purchase')                                       AS purchases,
    sumMapIf(map(assumeNotNull(currency), toDecimal128(assumeNotNull(revenue), 6)),
             event_type = 'purchase' AND revenue IS NOT NULL AND currency IS NOT NULL) AS revenue,
    uniqExact(user_key)                                                    AS users,
    uniqState(user_key)                                                    AS users_state,
    count()                                                                AS events
FROM {db}.events FINAL
WHERE event_time >= {lo:DateTime64(3, 'UTC')} AND event_time < {hi:DateTime64(3, 'UTC')}
  AND toDate(event_time) IN {days:Array(Date)}
GROUP BY day, app_id, media_source, campaign, ad_set, platform
"""


def refresh(client: Client, database: str, days: Iterable[date]) -> int:
    """Rebuild ``daily_rollups`` for ``days``; return the number of rollup rows written."""
    days = sorted(set(days))
    if not days:
        return 0
    staging = f"{database}.daily_rollups_staging_{uuid.uuid4().hex[:12]}"
    client.command(
        f"CREATE TABLE {staging} AS {database}.daily_rollups ENGINE = MergeTree "
        "PARTITION BY toYYYYMMDD(day) ORDER BY (app_id, day, media_source, campaign, ad_set, platform)")
    try:
        lo = datetime.combine(days[0], datetime.min.time(), timezone.utc)
        hi = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), timezone.utc)
        client.command(
            f"INSERT INTO {staging} ({', '.join(COLUMNS)}) " + SELECT.replace("{db}", database),
            parameters={"lo": lo, "hi": hi, "days": days}, settings={"async_insert": 0})
        built = dict(client.query(f"SELECT day, count() FROM {staging} GROUP BY day").result_rows)
        for d in days:
            if d in built:
                client.command(f"ALTER TABLE {database}.daily_rollups REPLACE PARTITION {d:%Y%m%d} FROM {staging}")
            else:  # no events that day (any more): the day's rollup must be empty too
                client.command(f"ALTER TABLE {database}.daily_rollups DROP PARTITION {d:%Y%m%d}")
        return sum(built.values())
    finally:
        client.command(f"DROP TABLE IF EXISTS {staging}")


def stale_days(client: Client, database: str, margin_s: int = 300) -> list[date]:
    """Days holding events loaded after the last rebuild (minus a margin): what a crashed sink left unrefreshed."""
    rows = client.query(
        f"SELECT DISTINCT toDate(event_time) FROM {database}.events WHERE loaded_at >= "
        f"(SELECT max(refreshed_at) FROM {database}.daily_rollups) - toIntervalSecond({int(margin_s)})").result_rows
    return sorted(r[0] for r in rows)
