"""A short warehouse report for `attrib run` (and anyone): installs and revenue by source/campaign, duplicates
removed, pending and unattributed counts. Works while the sink runs (asks its loopback port) or against a server."""

from __future__ import annotations

from typing import Any

from attrib.settings import Settings
from ops.sql import query_rows

# By canonical partner (schemas/partners.csv) with revenue in the reporting currency (`attrib fx load`); purchases
# without a rate for their day are counted apart, never summed in.
BY_CAMPAIGN = """
SELECT if(partner_id = '', '(not attributed)', any(partner_name)) AS source, campaign,
       sum(installs + reinstalls) AS installs, sum(purchases) AS purchases,
       toString(sum(revenue_reporting)) AS revenue, any(reporting_currency) AS currency,
       sum(purchases_unconverted) AS unconverted
FROM daily_rollups GROUP BY partner_id, campaign
ORDER BY installs DESC, purchases DESC, source, campaign LIMIT {limit}
"""
# Duplicates: deliveries the ingress accepted that produced neither an event nor a dead letter (the worker dropped
# them as re-sends), plus event records the warehouse collapsed onto an existing (event_id, version).
COUNTS = """
SELECT
    (SELECT count() FROM events FINAL)                                                   AS events,
    (SELECT countIf(startsWith(attribution_status, 'pending')) FROM events FINAL)        AS pending,
    (SELECT countIf(attribution_status = 'unattributed') FROM events FINAL)              AS unattributed,
    (SELECT countIf(version > 1) FROM events FINAL)                                      AS corrected,
    (SELECT count() FROM raw_deliveries FINAL)                                           AS deliveries,
    (SELECT count() FROM raw_deliveries FINAL
     WHERE (raw_topic, raw_partition, raw_offset) NOT IN (SELECT raw_topic, raw_partition, raw_offset FROM events)
       AND (raw_topic, raw_partition, raw_offset) NOT IN
           (SELECT assumeNotNull(raw_topic), assumeNotNull(raw_partition), assumeNotNull(raw_offset)
            FROM dead_letters WHERE raw_topic IS NOT NULL))                              AS duplicate_deliveries,
    (SELECT count() FROM dead_letters FINAL)                                             AS dead_letters,
    (SELECT uniqExactIf(alert_id, state = 'firing') - uniqExactIf(alert_id, state = 'resolved') FROM alerts FINAL)
                                                                                         AS alerts_firing
"""


def _money(r: dict[str, Any]) -> str:
    text = f"{float(r['revenue']):,.2f} {r['currency']}" if r["purchases"] else "-"
    return text + (f" (+{r['unconverted']} without FX rate)" if r["unconverted"] else "")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = lambda r: "  ".join(str(x).ljust(w) if i < 2 else str(x).rjust(w)  # noqa: E731
                               for i, (x, w) in enumerate(zip(r, widths, strict=True)))
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def report(s: Settings, limit: int = 15, url: str | None = None) -> str:
    counts = query_rows(s, COUNTS, url)[0]
    camp = query_rows(s, BY_CAMPAIGN.replace("{limit}", str(int(limit))), url)
    body = _table([[r["source"], r["campaign"] or "-", r["installs"], r["purchases"], _money(r)]
                   for r in camp], ["partner", "campaign", "installs", "purchases", "revenue"]) if camp else "(no data)"
    return (f"installs and revenue by partner/campaign (top {limit})\n{body}\n\n"
            f"events {counts['events']:,}  ·  deliveries archived {counts['deliveries']:,}  ·  "
            f"duplicate deliveries removed {counts['duplicate_deliveries']:,}  ·  corrected {counts['corrected']:,}\n"
            f"pending attribution {counts['pending']:,}  ·  unattributed {counts['unattributed']:,}  ·  "
            f"dead letters {counts['dead_letters']:,}  ·  alerts firing {counts['alerts_firing']:,}\n")
