"""The warehouse side of canonical partners: the SQL key is the Python key; rollups carry the canonical partner;
a mapping correction re-maps history through a rollup rebuild, moving counts between partners without changing
any total; unknown values are their own partner, listed by the pack's unmapped_partners query and counted."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import partners
from sinks import migrate, pack, rollups, rows
from sinks import partners as sink_partners
from sinks.clickhouse import connect
from tests.sinks.fixtures import DAY0, event, touch

DB = "pm_x"
SOURCES = ["Facebook Ads", "META", "googleadwords_int", "Zeta Mobile", "zeta-mobile", "organic", None]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, chdb_path):
    from attrib.settings import Settings

    s = Settings(var_dir=tmp_path_factory.mktemp("pm"), clickhouse={"path": chdb_path, "database": DB})
    client = connect(s)
    migrate.migrate(client, s)
    analyst = connect(s, database=DB)  # unqualified names, as the pack is written
    yield client, s, analyst
    analyst.close()
    client.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=24), min_size=1, max_size=50))
def test_sql_key_equals_python_key(warehouse, raws):
    client, _, _ = warehouse
    expr = partners.SQL_KEY.replace("{v}", "x")
    got = client.query(f"SELECT arrayMap(x -> {expr}, {{raws:Array(Nullable(String))}})",
                       parameters={"raws": raws}).result_rows[0][0]
    assert got == [partners.key(r) for r in raws]


def _events() -> list[dict]:
    out = []
    for i in range(60):
        ms = SOURCES[i % len(SOURCES)]
        user = f"u{i}"
        t = DAY0 + timedelta(days=i % 3, hours=i % 24)
        ft = touch(f"{user}-i", t, ms, f"C{i % 2}", "S") if ms else None
        out.append(event(f"{user}-i", user, "app", "install", t, ft=ft, organic=ms == "organic",
                         status="attributed" if ms else "pending_timeout"))
        out.append(event(f"{user}-p", user, "app", "purchase", t + timedelta(hours=1), ft=ft, revenue=Decimal("2.50"),
                         currency="USD", organic=ms == "organic"))
    return out


def _by_partner(client) -> dict[str, tuple[int, int, Decimal]]:
    return {p: (i, n, r) for p, i, n, r in client.query(
        f"SELECT partner_id, sum(installs), sum(purchases), sum(revenue_reporting) FROM {DB}.daily_rollups "
        "GROUP BY partner_id").result_rows}


def test_rollups_by_canonical_partner_and_a_correction_remaps_history(warehouse):
    client, s, analyst = warehouse
    client.command(f"TRUNCATE TABLE {DB}.events")
    client.command(f"TRUNCATE TABLE {DB}.daily_rollups")
    evs = _events()
    client.insert(f"{DB}.events", [rows.event_row(e) for e in evs], column_names=rows.EVENT_COLUMNS)
    days = {e["event_time"].date() for e in evs}
    rollups.refresh(client, DB, days)

    pm = partners.load()
    want: dict = defaultdict(lambda: [0, 0])
    for e in evs:
        ms = (e["first_touch"] or {}).get("media_source") or e["media_source"]
        p = pm.resolve(ms)[0]
        want[p.id if p else ""][e["event_type"] == "purchase"] += 1
    before = _by_partner(client)
    assert {p: (i, n) for p, (i, n, _) in before.items()} == {p: tuple(v) for p, v in want.items()}
    installs = Counter(e["media_source"] for e in evs if e["event_type"] == "install")
    assert before["meta"][0] == installs["Facebook Ads"] + installs["META"]  # one partner, two MMPs' spellings
    assert before["zeta_mobile"][0] == installs["Zeta Mobile"] + installs["zeta-mobile"]  # unknowns meet on a key

    per_event = dict(analyst.query("SELECT partner_id, countIf(event_type = 'install') FROM "
                                   "events_canonical(reporting = 'USD') GROUP BY partner_id").result_rows)
    assert per_event == {p: i for p, (i, _, _) in before.items()}  # every event carries its partner too
    unmapped = {r[0]: r for r in analyst.query(pack.load()["unmapped_partners"]).result_rows}
    assert set(unmapped) == {"zeta_mobile"}
    assert unmapped["zeta_mobile"][2] == sum(1 for e in evs if e["media_source"] in ("Zeta Mobile", "zeta-mobile"))
    assert rollups.quality(client, DB)[:2] == (1, unmapped["zeta_mobile"][2])

    # the correction: a settings row maps the unknown network to a new partner, and META moves off Meta
    fixed = s.model_copy(update={"reporting": s.reporting.model_copy(update={
        "partners": {"Zeta Mobile": "zeta", "META": "meta_linkrunner"},
        "partner_names": {"zeta": "Zeta", "meta_linkrunner": "Meta via Linkrunner"}})})
    synced = sink_partners.sync(client, DB, sink_partners.mapping(fixed))
    assert {c.key: (c.old, c.new) for c in synced.changes} == {
        "zeta_mobile": (None, ("zeta", "Zeta")), "meta": (("meta", "Meta"), ("meta_linkrunner", "Meta via Linkrunner"))}
    assert set(synced.dirty_days) == {e["event_time"].date() for e in evs
                                      if e["media_source"] in ("Zeta Mobile", "zeta-mobile", "META")}
    assert sink_partners.sync(client, DB, sink_partners.mapping(fixed)).generation is None  # idempotent
    assert _by_partner(client) == before  # nothing changes silently before the rebuild

    rollups.refresh(client, DB, synced.dirty_days)
    after = _by_partner(client)
    assert after["zeta"] == before["zeta_mobile"] and "zeta_mobile" not in after
    assert after["meta"][0] + after["meta_linkrunner"][0] == before["meta"][0]
    assert after["meta"][0] == after["meta_linkrunner"][0]
    for i in range(3):  # totals unchanged by the re-mapping
        assert sum(v[i] for v in after.values()) == sum(v[i] for v in before.values())
    assert analyst.query(pack.load()["unmapped_partners"]).result_rows == []
    names = dict(client.query(f"SELECT DISTINCT partner_id, partner_name FROM {DB}.daily_rollups").result_rows)
    assert names["zeta"] == "Zeta" and names["google_ads"] == "Google Ads" and names[""] == ""
    assert Counter(client.query(f"SELECT generation FROM {DB}.partner_map").result_rows).keys() == {
        (synced.generation,)}


def test_sink_gauges_and_the_reload_command(warehouse, capsys):
    from argparse import Namespace

    from ops import partners as cli

    client, s, _ = warehouse
    sink_partners.sync(client, DB, sink_partners.mapping(s))  # back to the file's mapping
    client.command(f"TRUNCATE TABLE {DB}.events")
    evs = _events()
    client.insert(f"{DB}.events", [rows.event_row(e) for e in evs], column_names=rows.EVENT_COLUMNS)
    rollups.mark_dirty(client, DB, {e["event_time"].date() for e in evs})
    r = rollups.Refresher(lambda: connect(s), DB, interval_s=1)
    try:
        r.run_once()
    finally:
        r.stop()
    metrics = dict(line.split() for line in r.prometheus().splitlines())
    before = sink_partners.current(client, DB)
    unmapped = sum(1 for e in evs if partners.key((e["first_touch"] or {}).get("media_source") or e["media_source"])
                   not in before and e["media_source"])
    assert metrics["attrib_sink_unmapped_partner_events"] == str(unmapped) and unmapped > 0
    assert metrics["attrib_sink_unmapped_partners"] == str(len({partners.key(e["media_source"]) for e in evs
                                                               if e["media_source"]} - before.keys()))

    assert cli.main(Namespace(action="unmapped"), s) == 0
    assert "zeta_mobile\tZeta Mobile, zeta-mobile" in capsys.readouterr().out.replace("zeta-mobile, Zeta Mobile",
                                                                                      "Zeta Mobile, zeta-mobile")
    fixed = s.model_copy(update={"reporting": s.reporting.model_copy(update={
        "partners": {"zeta-mobile": "zeta"}, "partner_names": {"zeta": "Zeta"}})})
    assert cli.main(Namespace(action="reload"), fixed) == 0
    out = capsys.readouterr().out
    assert "zeta_mobile: (unmapped) -> zeta" in out and "rollups rebuilt for" in out
    assert client.query(f"SELECT sum(events) FROM {DB}.daily_rollups WHERE partner_id = 'zeta'").result_rows[0][0] \
        == unmapped
    assert cli.main(Namespace(action="reload"), fixed) == 0
    assert "unchanged" in capsys.readouterr().out
