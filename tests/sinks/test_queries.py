"""Every query of the analyst pack (docs/queries.sql) runs on data loaded through the sink and returns what that
data implies — the expectations are computed here from the generated traffic, independently of SQL."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from schemas import partners
from sinks import pack
from sinks.clickhouse import connect
from tests.sinks.fixtures import produce, traffic, truth_rollups
from tests.sinks.helpers import caught_up, running, wait_for, warehouse

INSTALL = ("install", "reinstall")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, kafka_bootstrap, chdb_path):
    from attrib.settings import Settings

    tag = uuid.uuid4().hex[:8]
    s = Settings(var_dir=tmp_path_factory.mktemp("q"), kafka={"bootstrap_servers": kafka_bootstrap},
                 clickhouse={"path": chdb_path, "database": f"q_{tag}"},
                 topics={"raw": f"q-{tag}.raw", "events": f"q-{tag}.events", "dead_letters": f"q-{tag}.dlq",
                         "alerts_spike": f"q-{tag}.spike", "alerts_drop": f"q-{tag}.drop", "partitions": 3},
                 sink={"group_id": f"q-{tag}", "rollup_refresh_s": 0.2, "batch_seconds": 0.3})
    admin = warehouse(s)
    tr = traffic(users=400, seed=42)
    alerts = _alerts()
    produce(s.kafka.bootstrap_servers, s.topics.events, tr.records)
    produce(s.kafka.bootstrap_servers, s.topics.alerts_drop, [a for a in alerts if a["direction"] == "drop"], "alert")
    produce(s.kafka.bootstrap_servers, s.topics.alerts_spike, [a for a in alerts if a["direction"] == "spike"],
            "alert")
    with running(s) as sink:
        wait_for(caught_up(sink, len(tr.records) + len(alerts)), "the sink to load the traffic")
    admin.close()
    client = connect(s, database=s.clickhouse.database)  # unqualified names, as analysts write them
    yield client, tr, alerts
    client.close()


def _alerts() -> list[dict]:
    t = datetime(2024, 6, 22, 8, 0, tzinfo=UTC)
    base = {"severity": "warning", "scope": "source", "app_id": "com.example.shop", "event_type": "install",
            "observed": 2.0, "expected": 30.0, "resolved_at": None, "p_value": 0.001, "detail": ""}
    out: list[dict[str, Any]] = []
    for i, (direction, ms) in enumerate([("drop", "Facebook Ads"), ("spike", "tiktok"), ("drop", "organic")]):
        start = t + timedelta(hours=i)
        out.append({**base, "alert_id": f"al-{i}", "state": "firing", "direction": direction, "media_source": ms,
                    "bucket_start": start, "bucket_end": start + timedelta(minutes=5),
                    "created_at": start + timedelta(minutes=6)})
    resolved = {**out[0], "state": "resolved", "created_at": out[0]["created_at"] + timedelta(hours=2)}
    resolved["resolved_at"] = resolved["created_at"]
    return [*out, resolved, dict(out[1])]  # plus a duplicate firing record


def _run(client, name: str) -> list[dict]:
    res = client.query(pack.load()[name])
    return [dict(zip(res.column_names, r, strict=True)) for r in res.result_rows]


def _attr(e: dict) -> tuple[str, str]:
    ft = e["first_touch"] or {}
    src = ft if ft.get("media_source") else e
    return src["media_source"] or "", src["campaign"] or ""


def _users(final: dict) -> dict:
    """(app, user) → install time, attribution, purchase times: what the per-user queries aggregate."""
    users: dict = defaultdict(lambda: {"installed": None, "ms": "", "purchases": []})
    for e in final.values():
        u = users[(e["app_id"], e["user_key"])]
        if e["event_type"] in INSTALL and (u["installed"] is None or e["event_time"] < u["installed"]):
            u["installed"], u["ms"] = e["event_time"], _attr(e)[0]
        if e["event_type"] == "purchase":
            u["purchases"].append(e["event_time"])
    return {k: u for k, u in users.items() if u["installed"] is not None}


def test_pack_has_every_question():
    assert set(pack.load()) == {"installs_revenue_by_campaign_day", "installs_revenue_by_partner_day",
                                "unmapped_partners", "unconverted_revenue", "roas_inputs_by_campaign_cohort",
                                "install_to_first_purchase_quantiles", "purchase_conversion_d1_d7_by_source",
                                "organic_vs_paid", "pending_and_unattributed_share", "latest_alerts"}


def test_installs_and_revenue_by_campaign_and_day(loaded):
    client, tr, _ = loaded
    want: dict = defaultdict(lambda: {"installs": 0, "reinstalls": 0, "purchases": 0, "rev": defaultdict(Decimal)})
    for (day, _app, ms, campaign, _set, _pf), g in truth_rollups(tr.final).items():
        w = want[(day, ms, campaign)]
        for k in ("installs", "reinstalls", "purchases"):
            w[k] += g[k]
        for cur, v in g["revenue"].items():
            w["rev"][cur] += v
    got = {(r["day"], r["media_source"], r["campaign"]): {
        "installs": r["installs"], "reinstalls": r["reinstalls"], "purchases": r["purchases"],
        "rev": dict(r["revenue_by_currency"])} for r in _run(client, "installs_revenue_by_campaign_day")}
    assert got == {k: {**v, "rev": dict(v["rev"])} for k, v in want.items()}
    assert sum(v["installs"] for v in got.values()) > 100


def test_installs_and_reporting_currency_revenue_by_partner_and_day(loaded):
    """No FX rates are loaded here: USD revenue is reported as is, every EUR purchase is counted as unconverted."""
    client, tr, _ = loaded
    pm = partners.load()
    want: dict = defaultdict(lambda: {"installs": 0, "purchases": 0, "revenue": Decimal(0), "unconverted": 0})
    for (day, _app, ms, *_), g in truth_rollups(tr.final).items():
        p = pm.resolve(ms)[0] if ms else None
        w = want[(day, p.id if p else "", p.name if p else "")]
        w["installs"] += g["installs"]
        w["purchases"] += g["purchases"]
        w["revenue"] += g["revenue"].get("USD", Decimal(0))
    for e in tr.final.values():
        if e["event_type"] == "purchase" and e["currency"] == "EUR":
            ft = e["first_touch"] or {}
            p = pm.resolve(ft.get("media_source") or e["media_source"])[0]
            want[(e["event_time"].date(), p.id if p else "", p.name if p else "")]["unconverted"] += 1
    got = {(r["day"], r["partner_id"], r["partner_name"]): {
        "installs": r["installs"], "purchases": r["purchases"], "revenue": r["revenue"],
        "unconverted": r["purchases_unconverted"]} for r in _run(client, "installs_revenue_by_partner_day")}
    assert got == dict(want)
    assert {r["currency"] for r in _run(client, "installs_revenue_by_partner_day")} == {"USD"}
    assert {k[1] for k in got} == {"meta", "google_ads", "tiktok", "organic", ""}
    eur: defaultdict[Any, int] = defaultdict(int)
    for e in tr.final.values():
        if e["event_type"] == "purchase" and e["currency"] == "EUR":
            eur[e["event_time"].date()] += 1
    assert {r["day"]: r["purchases"] for r in _run(client, "unconverted_revenue")} == eur
    assert _run(client, "unmapped_partners") == []


def test_roas_inputs_by_campaign_and_cohort_day(loaded):
    client, tr, _ = loaded
    installs: dict = defaultdict(int)
    revenue: dict = defaultdict(lambda: [Decimal(0)] * 5)
    for e in tr.final.values():
        ms, campaign = _attr(e)
        if e["event_type"] in INSTALL and ms not in ("", "organic"):
            installs[(ms, campaign, e["event_time"].date())] += 1
        ft = e["first_touch"]
        if e["event_type"] == "purchase" and ft and e["revenue"] is not None:
            age = (e["event_time"].date() - ft["event_time"].date()).days
            cells = revenue[(ft["media_source"], ft["campaign"], ft["event_time"].date(), e["currency"])]
            for i, limit in enumerate((0, 1, 7, 30)):
                if age <= limit:
                    cells[i] += e["revenue"]
            cells[4] += e["revenue"]
    want = {}
    for key, n in installs.items():
        currencies = [c for (ms, camp, day, c) in revenue if (ms, camp, day) == key]
        for cur in currencies or [""]:
            want[(*key, cur)] = (n, *(revenue[(*key, cur)] if cur else [Decimal(0)] * 5))
    got = {(r["media_source"], r["campaign"], r["cohort_day"], r["currency"]): (
        r["installs"], r["revenue_d0"], r["revenue_d1"], r["revenue_d7"], r["revenue_d30"], r["revenue_total"])
        for r in _run(client, "roas_inputs_by_campaign_cohort")}
    assert got == want
    assert any(v[1] < v[3] for v in got.values())  # revenue keeps coming after day 0: the windows matter


def test_install_to_first_purchase_quantiles(loaded):
    client, tr, _ = loaded
    secs: dict = defaultdict(list)
    for u in _users(tr.final).values():
        after = [t for t in u["purchases"] if t >= u["installed"]]
        if after:
            secs[u["ms"]].append(int((min(after) - u["installed"]).total_seconds()))

    def q(xs: list[int], level: float) -> int:  # quantileExact: the element at floor(level * n) of the sorted list
        return sorted(xs)[int(level * len(xs))]

    want = {ms: (len(xs), q(xs, 0.5), q(xs, 0.9), q(xs, 0.99)) for ms, xs in secs.items()}
    got = {r["media_source"]: (r["purchasers"], r["p50_s"], r["p90_s"], r["p99_s"])
           for r in _run(client, "install_to_first_purchase_quantiles")}
    assert got == want and len(got) >= 4


def test_d1_d7_purchase_conversion_by_source(loaded):
    client, tr, _ = loaded
    want: dict = defaultdict(lambda: [0, 0, 0])
    for u in _users(tr.final).values():
        after = [t for t in u["purchases"] if t >= u["installed"]]
        w = want[u["ms"]]
        w[0] += 1
        w[1] += bool(after) and min(after) < u["installed"] + timedelta(days=1)
        w[2] += bool(after) and min(after) < u["installed"] + timedelta(days=7)
    rows = _run(client, "purchase_conversion_d1_d7_by_source")
    assert {r["media_source"]: [r["installers"], r["d1_purchasers"], r["d7_purchasers"]] for r in rows} == want
    for r in rows:
        assert r["d1_conversion"] == pytest.approx(r["d1_purchasers"] / r["installers"], abs=1e-4)
        assert r["d7_conversion"] == pytest.approx(r["d7_purchasers"] / r["installers"], abs=1e-4)
    assert any(r["d1_purchasers"] < r["d7_purchasers"] for r in rows)


def test_organic_vs_paid(loaded):
    client, tr, _ = loaded
    want: dict = defaultdict(lambda: [0, 0, defaultdict(Decimal)])
    for (day, app, ms, *_), g in truth_rollups(tr.final).items():
        kind = "organic" if ms == "organic" else "unattributed" if ms == "" else "paid"
        w = want[(day, app, kind)]
        w[0] += g["installs"] + g["reinstalls"]
        w[1] += g["purchases"]
        for cur, v in g["revenue"].items():
            w[2][cur] += v
    got = {(r["day"], r["app_id"], r["kind"]): [r["installs"], r["purchases"], dict(r["revenue_by_currency"])]
           for r in _run(client, "organic_vs_paid")}
    assert got == {k: [a, b, dict(c)] for k, (a, b, c) in want.items()}
    assert {k[2] for k in got} == {"organic", "paid", "unattributed"}


def test_pending_and_unattributed_share(loaded):
    client, tr, _ = loaded
    want: dict = defaultdict(lambda: [0, 0, 0])
    for e in tr.final.values():
        w = want[e["app_id"]]
        w[0] += 1
        w[1] += e["attribution_status"].startswith("pending")
        w[2] += e["attribution_status"] == "unattributed"
    rows = _run(client, "pending_and_unattributed_share")
    assert {r["app_id"]: [r["events"], r["pending"], r["unattributed"]] for r in rows} == want
    assert all(r["pending"] > 0 and r["pending_share"] == pytest.approx(r["pending"] / r["events"], abs=1e-4)
               for r in rows)


def test_latest_alerts(loaded):
    client, _, alerts = loaded
    rows = _run(client, "latest_alerts")
    firing = sorted({a["alert_id"]: a for a in alerts if a["state"] == "firing"}.values(),
                    key=lambda a: a["created_at"], reverse=True)
    resolved = {a["alert_id"] for a in alerts if a["state"] == "resolved"}
    assert [r["alert_id"] for r in rows] == [a["alert_id"] for a in firing]
    assert {r["alert_id"]: r["state"] for r in rows} == {
        a["alert_id"]: "resolved" if a["alert_id"] in resolved else "firing" for a in firing}
    assert all((r["resolved_at"] is not None) == (r["state"] == "resolved") for r in rows)


def test_a_script_splits_into_its_named_statements():
    from ops.sql import statements

    got = statements(pack.PACK.read_text())
    assert [name for name, _ in got] == list(pack.load())
    assert statements("SELECT 1;\n-- only a comment;\nSELECT 2") == [("", "SELECT 1"), ("", "SELECT 2")]
