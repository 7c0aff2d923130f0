"""Rollup rebuild cost (on demand, not in CI): one day of N synthetic events in an embedded warehouse, then
``rollups.refresh`` of that day (+ the ``quality`` gauges) a few times, with the wall time and this process's CPU
(chdb runs in-process, so its threads count).

    .venv/bin/python bench/rollups.py [--events 300000] [--rounds 3]

The sink rebuilds a touched day every ``sink.rollup_refresh_s`` (at most a tenth of the time, rollups.BUSY_SHARE), so
under steady load its rollup CPU per delivery ≈ this CPU per round / (rate × the round interval): it grows with the
day's size, which is why the rebuild's per-event cost matters for bench/e2e.py."""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attrib.settings import Settings
from sinks import migrate, rollups
from sinks.clickhouse import connect

# ~20 unmapped fields plus the USD figure AppsFlyer sends: about the size of a demo event's properties
PROPS = "{" + ",".join(f'"k{i}":"value-{i}-xxxxxxxxxxxx"' for i in range(20)) + ',"event_revenue_usd":"1.23"}'


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="attrib-rollups-"))
    s = Settings(var_dir=d, clickhouse={"path": d / "ch", "database": "rb"})
    c = connect(s)
    migrate.migrate(c, s)
    today = date.today()
    c.command(f"""
        INSERT INTO rb.events (event_id, version, mmp, source, app_id, event_name, event_type, event_time,
                               received_at, user_key, platform, media_source, campaign, ad_set, revenue, currency,
                               properties, attribution_status, raw_topic, raw_partition, raw_offset)
        SELECT toString(number), 1, ['appsflyer', 'adjust', 'branch'][number % 3 + 1], 's', 'app', 'e',
               ['install', 'purchase', 'signup', 'open'][number % 4 + 1],
               toDateTime64('{today} 00:00:00', 3, 'UTC') + number / 10, now64(3), toString(number % 50000), 'ios',
               ['Facebook Ads', 'tiktok', 'googleadwords_int'][number % 3 + 1], 'c', 'a',
               if(number % 4 = 1, toDecimal64(1.5, 6), NULL), if(number % 4 = 1, ['EUR', 'USD'][number % 2 + 1], NULL),
               '{PROPS}', 'attributed', 'raw', 0, number
        FROM numbers({a.events})""")
    for _ in range(a.rounds):
        t, u = time.perf_counter(), _cpu()
        n = rollups.refresh(c, "rb", [today], {}, "USD")
        rollups.quality(c, "rb")
        print(f"rebuilt {n} rollup rows from {a.events:,} events: wall {time.perf_counter() - t:.2f} s, "
              f"CPU {_cpu() - u:.2f} s", flush=True)
    c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
