"""`attrib dashboard` in a real headless Chromium over a real (embedded) warehouse: the page renders every chart
with the vendored uPlot under its strict CSP, and the numbers it shows are the ones computed here — installs by
partner from the generated traffic's truth, the rest by SQL written in this test."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiohttp
import pytest

from ops.dashboard.server import make_app, serve
from ops.fx.command import SAMPLE, load
from ops.fx.rates import parse
from ops.sql import query_rows
from schemas import partners
from sinks import migrate, rollups, rows
from sinks.clickhouse import connect
from tests.ops.inspect.cdp import Browser
from tests.sinks.fixtures import traffic, truth_rollups
from tests.support import free_port

pytestmark = pytest.mark.timeout(240)
TOKEN = "dash-" + uuid.uuid4().hex
T0 = datetime(2024, 6, 24, 9, 0, tzinfo=UTC)
RAW0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)  # raw_deliveries keeps only recent days (TTL)


def _dead(i: int, stage: str, reason: str) -> dict:
    return {"dead_letter_id": f"dl-{i}", "stage": stage, "reason": reason, "detail": "x", "field": None,
            "source": "af", "mmp": "appsflyer", "delivery_id": None, "raw": None, "payload": b"{}",
            "failed_at": T0 + timedelta(hours=i)}


def _alert(i: int, state: str, observed: float, expected: float) -> dict:
    start = T0 + timedelta(hours=i)
    return {"alert_id": f"al-{i}", "state": state, "direction": "drop" if observed < expected else "spike",
            "severity": "warning", "scope": "source", "app_id": "com.example.shop", "media_source": "Facebook Ads",
            "event_type": "install", "observed": observed, "expected": expected, "bucket_start": start,
            "bucket_end": start + timedelta(minutes=5), "created_at": start + timedelta(minutes=6),
            "resolved_at": None, "p_value": 0.001, "detail": ""}


def _raw(i: int) -> dict:
    return {"delivery_id": f"d{i}", "source": "af", "mmp": "appsflyer", "app_id": None, "method": "POST",
            "path": "/hooks/af", "query_string": "", "headers": {}, "body": b"{}", "remote_addr": "127.0.0.1",
            "received_at": RAW0 + timedelta(seconds=7 * i), "user_key": f"u{i}"}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, chdb_path):
    from attrib.settings import Settings

    db = f"dash_{uuid.uuid4().hex[:8]}"
    s = Settings(var_dir=tmp_path_factory.mktemp("dash"), clickhouse={"path": chdb_path, "database": db},
                 sink={"query_port": free_port()})  # nothing listens there: the dashboard opens the warehouse
    client = connect(s)
    migrate.migrate(client, s)
    tr = traffic(users=250, seed=11)
    client.insert(f"{db}.events", [rows.event_row(e) for e in tr.records], column_names=rows.EVENT_COLUMNS)
    dead = [_dead(i, st, rs) for i, (st, rs) in enumerate(
        [("normalize", "invalid_json")] * 3 + [("enrich", "internal")] * 2 + [("sink", "refused")])]
    client.insert(f"{db}.dead_letters", [rows.dead_letter_row(d) for d in dead], column_names=rows.DEAD_LETTER_COLUMNS)
    alerts = [_alert(0, "firing", 2, 30), _alert(1, "firing", 90, 20), _alert(0, "resolved", 2, 30)]
    alerts[2]["resolved_at"] = alerts[2]["created_at"] = T0 + timedelta(hours=3)
    client.insert(f"{db}.alerts", [rows.alert_row(a) for a in alerts], column_names=rows.ALERT_COLUMNS)
    raws = [_raw(i) for i in range(900)]  # 7 s apart: the newest hour holds 515 of them
    client.insert(f"{db}.raw_deliveries", [rows.raw_row(r, "raw", 0, i) for i, r in enumerate(raws)],
                  column_names=rows.RAW_COLUMNS)
    rollups.refresh(client, db, {e["event_time"].date() for e in tr.records})
    load(client, db, parse(SAMPLE.read_text(), SAMPLE.name), SAMPLE.name, "USD", 4)
    yield s, client, tr
    client.close()


async def test_dashboard_renders_the_warehouse_numbers(warehouse, chromium, caplog) -> None:
    s, client, tr = warehouse
    db = s.clickhouse.database
    port = free_port()
    stop, started = asyncio.Event(), asyncio.Event()
    app = make_app(TOKEN, lambda sql: query_rows(s, sql))
    caplog.set_level(logging.INFO, logger="attrib.dashboard.access")
    task = asyncio.create_task(serve(app, "127.0.0.1", port, stop, started))
    await started.wait()
    base = f"http://127.0.0.1:{port}/"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "api/summary") as r:
                assert r.status == 401
            async with http.get(base + "api/summary?token=" + TOKEN) as r:
                assert r.status == 401  # never in a URL: it would land in logs and proxies
            async with http.get(base) as r:
                assert "script-src 'self'" in r.headers["Content-Security-Policy"]
                assert "unsafe-inline" not in r.headers["Content-Security-Policy"]

        async with Browser(chromium) as b:
            await b.goto(base + "#token=" + TOKEN)
            assert await b.wait_for("document.body.dataset.ready === '1'", 60), await b.eval(
                "document.getElementById('state').textContent")
            assert await b.eval("location.href") == base  # the fragment left the address bar
            assert await b.eval("document.querySelectorAll('.chart canvas').length") == 10  # every chart drew
            kpi = await b.eval("Object.fromEntries([...document.querySelectorAll('.kpi')].map("
                               "k => [k.dataset.kpi, k.querySelector('.v').textContent]))")
            totals = await b.eval("Object.fromEntries([...document.querySelectorAll('.chart')].map(c => "
                                  "[c.dataset.chart, Object.fromEntries([...c.querySelectorAll('.totals tr')].map("
                                  "tr => [tr.dataset.label, tr.children[1].textContent]))]))")
            alert_rows = await b.eval("[...document.querySelectorAll('#alerts tr')].map(tr => "
                                      "[tr.dataset.alert, tr.lastChild.textContent])")
    finally:
        stop.set()
        await task

    # installs by partner: from the traffic's own truth, mapped in Python
    pm = partners.load()
    by_partner: dict = defaultdict(int)
    for (_, _, ms, *_), g in truth_rollups(tr.final).items():
        p = pm.resolve(ms)[0] if ms else None
        by_partner[p.name if p else "(not attributed)"] += g["installs"] + g["reinstalls"]
    assert totals["installs_partner"] == {k: f"{v:,}" for k, v in by_partner.items()}
    assert kpi["installs"] == f"{sum(by_partner.values()):,}"

    def one(sql: str) -> list:
        return client.query(sql.replace("{db}", db)).result_rows

    [(revenue, unconverted, purchases)] = one(
        "SELECT sum(revenue_reporting), sum(purchases_unconverted), sum(purchases) FROM {db}.daily_rollups")
    assert kpi["revenue"] == f"{revenue:,.2f} USD" and kpi["purchases"] == f"{purchases:,}"
    assert kpi["purchases_unconverted"] == f"{unconverted:,}"
    rev = {name: Decimal(v) for name, v in one(
        "SELECT if(partner_id = '', '(not attributed)', any(partner_name)), sum(revenue_reporting) "
        "FROM {db}.daily_rollups GROUP BY partner_id")}
    assert totals["revenue_partner"] == {k: f"{v:,.2f}" for k, v in rev.items()}
    status = dict(one("SELECT attribution_status, count() FROM {db}.events FINAL "
                      "WHERE attribution_status NOT IN ('attributed', 'organic') GROUP BY attribution_status"))
    assert totals["status"] == {k: f"{v:,}" for k, v in status.items()} and status
    assert totals["dead"] == {"normalize: invalid_json": "3", "enrich: internal": "2", "sink: refused": "1"}
    assert kpi["dead_letters"] == "6" and kpi["alerts_firing"] == "1"
    assert sorted(alert_rows) == [["al-0", "resolved"], ["al-1", "firing"]]
    [(newest_hour,)] = one("SELECT count() FROM {db}.raw_deliveries WHERE received_at > "
                           "(SELECT max(received_at) FROM {db}.raw_deliveries) - INTERVAL 1 HOUR")
    assert totals["health"] == {"deliveries": f"{newest_hour:,}"} and newest_hour == 515
    kinds = dict(one("SELECT multiIf(partner_id = 'organic', 'organic', partner_id = '', 'not attributed (yet)', "
                     "'attributed'), sum(installs + reinstalls) FROM {db}.daily_rollups GROUP BY 1"))
    assert totals["kind"] == {k: f"{v:,}" for k, v in kinds.items()}
    # the access log saw requests, and never the token
    logged = " ".join(str(getattr(r, "fields", "")) + r.getMessage() for r in caplog.records)
    assert "/api/summary" in logged and TOKEN not in logged
