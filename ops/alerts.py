"""`attrib alerts`: run the alerts app (default), or `attrib alerts explain --app A --source S --event E [--since 2d]`
to replay one series' stored counts (from the warehouse) through the detector and print, per bucket, observed,
expected, the score and why it did or did not alert. Lives in ops/: it joins the warehouse (sinks) and the detector
(alerts), which are stages side by side."""

from __future__ import annotations

import argparse
import re
import sys
import time

from alerts import app as alerts_app
from alerts.config import config_from
from alerts.detector import PLATFORM, SeriesKey
from alerts.explain import counts_sql, explain, render
from attrib.settings import Settings

HELP = alerts_app.HELP + "; `explain` replays one series' stored counts through the detector"
UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration_s(v: str) -> int:
    m = re.fullmatch(r"(\d+)([mhdw])", v.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"expected a duration like 90m, 6h, 2d, 3w; got {v!r}")
    return int(m[1]) * UNITS[m[2]]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=["run", "explain"], default="run")
    p.add_argument("--app", help="explain: app id")
    p.add_argument("--source", default=PLATFORM, help="explain: media source ('*' = all sources, the default)")
    p.add_argument("--event", default="install", help="explain: event type (default install)")
    p.add_argument("--since", type=duration_s, default=2 * 86400, help="explain: buckets shown (default 2d)")
    p.add_argument("--history", type=duration_s, default=21 * 86400,
                   help="explain: history learnt before them (default 3w: weekly slots need 3 weeks)")
    p.add_argument("--all", action="store_true", help="explain: also list normal buckets")


def main(args: argparse.Namespace, s: Settings) -> int:
    if args.action == "run":
        return alerts_app.main(args, s)
    if not args.app:
        print("attrib alerts explain: --app is required", file=sys.stderr)
        return 2
    from ops.sql import query_rows

    d = s.alerts.detect
    key = SeriesKey(args.app, args.source, args.event)
    span = args.since + args.history
    rows = query_rows(s, counts_sql(s.clickhouse.database, key, d.bucket_s, span))
    counts = {int(r["b"]): int(r["n"]) for r in rows}
    now = int(time.time() * 1000)
    now -= now % (d.bucket_s * 1000)
    out = explain(counts, now - span * 1000, now, config_from(d), key)
    print(f"{key}: {sum(counts.values())} events in {len(counts)} non-empty buckets over {span // 86400} d "
          f"(learning {args.history // 86400} d, showing {args.since / 86400:g} d)")
    print(render(out, now - args.since * 1000, args.all))
    return 0
