"""What the dashboard shows: SQL over the warehouse, pivoted into chart series (pure shaping, I/O by a callable).

Every chart is ``{"id", "title", "unit", "x": [epoch s], "series": [{"label", "values"}], "totals": {label: n}}``;
``totals`` are printed under each chart, so a person (and the browser test) can read the numbers a chart draws.
Windows are relative to the newest data, like the analyst pack, so replayed history shows too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

Rows = list[dict[str, Any]]
Query = Callable[[str], Rows]
TOP = 8  # series per chart; the rest is summed as "other"

KPIS = """
SELECT
    (SELECT sum(installs) + sum(reinstalls) FROM daily_rollups WHERE day >= {lo})       AS installs,
    (SELECT sum(purchases) FROM daily_rollups WHERE day >= {lo})                         AS purchases,
    (SELECT toFloat64(sum(revenue_reporting)) FROM daily_rollups WHERE day >= {lo})      AS revenue,
    (SELECT sum(purchases_unconverted) FROM daily_rollups WHERE day >= {lo})             AS purchases_unconverted,
    (SELECT uniqExactIf(partner_id, partner_mapped = 0) FROM daily_rollups WHERE day >= {lo}) AS unmapped_partners,
    (SELECT count() FROM dead_letters FINAL WHERE toDate(failed_at) >= {lo})             AS dead_letters,
    (SELECT uniqExactIf(alert_id, state = 'firing') - uniqExactIf(alert_id, state = 'resolved') FROM alerts FINAL)
                                                                                          AS alerts_firing,
    (SELECT any(reporting_currency) FROM daily_rollups WHERE reporting_currency != '')   AS reporting_currency
"""
WINDOW = "SELECT toString(max(day)) AS last FROM daily_rollups"
BY_PARTNER = """
SELECT toString(day) AS x, if(partner_id = '', '(not attributed)', any(partner_name)) AS label,
       sum(installs) + sum(reinstalls) AS installs, sum(purchases) AS purchases,
       toFloat64(sum(revenue_reporting)) AS revenue
FROM daily_rollups WHERE day >= {lo} GROUP BY x, partner_id ORDER BY x
"""
BY_CAMPAIGN = """
SELECT toString(day) AS x,
       if(partner_id = '', '(not attributed)',
          concat(any(partner_name), ' · ', if(campaign = '', '-', campaign)))          AS label,
       sum(installs) + sum(reinstalls) AS installs, toFloat64(sum(revenue_reporting)) AS revenue
FROM daily_rollups WHERE day >= {lo} GROUP BY x, partner_id, campaign ORDER BY x
"""
KIND = """
SELECT toString(day) AS x,
       multiIf(partner_id = 'organic', 'organic', partner_id = '', 'not attributed (yet)', 'attributed') AS label,
       sum(installs) + sum(reinstalls) AS n
FROM daily_rollups WHERE day >= {lo} GROUP BY x, label ORDER BY x
"""
STATUS = """
SELECT toString(toDate(event_time)) AS x, attribution_status AS label, count() AS n
FROM events FINAL
WHERE toDate(event_time) >= {lo} AND attribution_status NOT IN ('attributed', 'organic')
GROUP BY x, label ORDER BY x
"""
DEAD = """
SELECT toString(toDate(failed_at)) AS x, concat(stage, ': ', reason) AS label, count() AS n
FROM dead_letters FINAL WHERE toDate(failed_at) >= {lo} GROUP BY x, label ORDER BY x
"""
ALERTS = """
SELECT alert_id, any(direction) AS direction, any(severity) AS severity, any(scope) AS scope,
       any(media_source) AS media_source, any(event_type) AS event_type,
       toUnixTimestamp(min(bucket_start)) AS t, argMin(observed, created_at) AS observed,
       argMin(expected, created_at) AS expected, max(state = 'resolved') AS resolved
FROM alerts FINAL WHERE toDate(bucket_start) >= {lo} GROUP BY alert_id ORDER BY t, alert_id
"""
# Pipeline health over the newest hour of deliveries, per minute: deliveries/s at the ingress, and per event the
# time from receipt to the worker's emit and to the warehouse load (sink delay). Kafka consumer lag itself is a
# live metric (the services' /metrics), not in the warehouse; these delays are its effect on the data.
HEALTH = """
WITH (SELECT max(received_at) FROM raw_deliveries) AS newest
SELECT m AS x, deliveries / 60 AS deliveries_per_s, worker_delay_s, sink_delay_s
FROM (
    SELECT toUnixTimestamp(toStartOfMinute(received_at)) AS m, count() AS deliveries
    FROM raw_deliveries FINAL WHERE received_at > newest - INTERVAL 1 HOUR GROUP BY m
) AS d
FULL OUTER JOIN (
    SELECT toUnixTimestamp(toStartOfMinute(received_at)) AS m,
           avg(dateDiff('millisecond', received_at, emitted_at)) / 1000 AS worker_delay_s,
           avg(dateDiff('millisecond', received_at, loaded_at)) / 1000 AS sink_delay_s
    FROM events WHERE received_at > newest - INTERVAL 1 HOUR GROUP BY m
) AS e USING (m)
ORDER BY x
"""


def _epoch(day: str) -> int:
    return int(datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC).timestamp())


def pivot(rows: Rows, value: str, top: int = TOP) -> tuple[list[int], list[dict[str, Any]], dict[str, float]]:
    """(x, series, totals) from rows of (x=day, label, value): the ``top`` labels by total, the rest as "other"."""
    days = sorted({r["x"] for r in rows})
    totals: dict[str, float] = defaultdict(float)
    for r in rows:
        totals[r["label"]] += r[value] or 0
    ranked = sorted(totals, key=lambda k: (-totals[k], k))
    keep = set(ranked[:top])
    cells: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in rows:
        cells[r["label"] if r["label"] in keep else "other"][r["x"]] += r[value] or 0
    labels = [k for k in ranked if k in keep] + (["other"] if len(ranked) > top else [])
    series = [{"label": k, "values": [cells[k].get(d, 0) for d in days]} for k in labels]
    shown = {k: round(sum(cells[k].values()), 2) for k in labels}
    return [_epoch(d) for d in days], series, shown


def _chart(cid: str, title: str, unit: str, rows: Rows, value: str) -> dict[str, Any]:
    x, series, totals = pivot(rows, value)
    return {"id": cid, "title": title, "unit": unit, "x": x, "series": series, "totals": totals, "daily": True}


def collect(query: Query, days: int = 30) -> dict[str, Any]:
    last = query(WINDOW)[0]["last"]
    if not last or last.startswith("1970"):
        return {"empty": True, "kpis": {}, "charts": [], "alerts": []}
    lo = f"toDate('{_iso(last, days)}')"
    k = query(KPIS.replace("{lo}", lo))[0]
    cur = k.pop("reporting_currency") or ""
    partner = query(BY_PARTNER.replace("{lo}", lo))
    campaign = query(BY_CAMPAIGN.replace("{lo}", lo))
    alerts = query(ALERTS.replace("{lo}", lo))
    health = query(HEALTH)
    charts = [
        _chart("installs_partner", "Installs by partner", "installs", partner, "installs"),
        _chart("purchases_partner", "Purchases by partner", "purchases", partner, "purchases"),
        _chart("revenue_partner", f"Revenue by partner ({cur})", cur, partner, "revenue"),
        _chart("installs_campaign", "Installs by campaign", "installs", campaign, "installs"),
        _chart("revenue_campaign", f"Revenue by campaign ({cur})", cur, campaign, "revenue"),
        _chart("kind", "Installs: attributed vs organic", "installs", query(KIND.replace("{lo}", lo)), "n"),
        _chart("status", "Pending and timed-out attribution (events)", "events",
               query(STATUS.replace("{lo}", lo)), "n"),
        _chart("dead", "Dead letters by stage and reason", "dead letters", query(DEAD.replace("{lo}", lo)), "n"),
        {"id": "alerts", "title": "Alerts: observed vs expected per alert bucket", "unit": "events", "points": True,
         "x": [a["t"] for a in alerts],
         "series": [{"label": "observed", "values": [a["observed"] for a in alerts]},
                    {"label": "expected", "values": [a["expected"] for a in alerts]}],
         "totals": {"alerts": len(alerts), "firing": sum(1 for a in alerts if not a["resolved"])}},
        {"id": "health", "title": "Pipeline health (newest hour, per minute)", "unit": "per s / s",
         "x": [h["x"] for h in health],
         "series": [{"label": "deliveries/s", "values": [h["deliveries_per_s"] for h in health]},
                    {"label": "worker delay s", "values": [h["worker_delay_s"] for h in health]},
                    {"label": "sink delay s", "values": [h["sink_delay_s"] for h in health]}],
         "totals": {"deliveries": round(sum((h["deliveries_per_s"] or 0) * 60 for h in health))}},
    ]
    return {"empty": False, "currency": cur, "from": _iso(last, days), "to": last, "kpis": k,
            "charts": charts, "alerts": alerts}


def _iso(last: str, days: int) -> str:
    return date.fromordinal(date.fromisoformat(last).toordinal() - days + 1).isoformat()
