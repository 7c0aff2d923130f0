"""`attrib alerts explain`: the replay says per bucket what was expected, how rare it was and why it alerted or not."""

from __future__ import annotations

import numpy as np

from alerts.config import Config
from alerts.detector import SeriesKey
from alerts.explain import counts_sql, explain, render

B = 300_000
DAY = 288
KEY = SeriesKey("com.foo", "fb", "install")


def test_a_stop_is_explained_as_an_alert_and_warm_up_and_normal_buckets_say_so() -> None:
    rng = np.random.default_rng(4)
    n = 4 * DAY
    counts = {b * B: int(x) for b, x in enumerate(rng.poisson(rng.gamma(12, 40 / 12, n)))}
    stop = n - 20
    for b in range(stop, n):
        counts.pop(b * B)  # nothing stored: the buckets read as zeros
    rows = explain(counts, 0, n * B, Config(bucket_ms=B), KEY)
    assert len(rows) == n and rows[0].why.startswith("warming up")
    fired = [r for r in rows if r.event == "fired" and "ALERT drop" in r.why]
    assert len(fired) == 1 and 0 <= fired[0].bucket_ms // B - stop <= 1
    text = render(rows, (n - DAY) * B)
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["bucket", "(UTC)", "obs", "expected"]
    assert any("ALERT drop" in ln and ln.split()[2] == "0" for ln in lines)
    assert len(render(rows, (n - DAY) * B, all_rows=True).splitlines()) == DAY + 1  # every bucket when asked


def test_counts_sql_quotes_and_scopes() -> None:
    sql = counts_sql("attribution", SeriesKey("a'b", "*", "install"), 300, 86400)
    assert "app_id = 'a\\'b'" in sql and "media_source" not in sql and "INTERVAL 300 SECOND" in sql
    assert "media_source = 'fb'" in counts_sql("attribution", KEY, 300, 60)


def test_the_cli_takes_explain_with_its_options() -> None:
    from ops.cli import build_parser

    a = build_parser().parse_args(["alerts", "explain", "--app", "com.foo", "--source", "fb", "--since", "2d"])
    assert (a.action, a.app, a.source, a.event, a.since) == ("explain", "com.foo", "fb", "install", 2 * 86400)
    assert build_parser().parse_args(["alerts"]).action == "run"
