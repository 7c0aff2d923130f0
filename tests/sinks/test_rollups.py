"""Property: however the same records are split into batches, re-sent, retried (with or without a token) and
corrected, the rebuilt rollups equal what the latest version of every event implies."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sinks import migrate, rollups, rows
from sinks.clickhouse import connect
from tests.sinks.fixtures import DAY0, event, touch, truth_rollups

SOURCES = [("Facebook Ads", "C1", "S1"), ("tiktok", "C2", "S2"), (None, None, None)]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, chdb_path):
    from attrib.settings import Settings

    s = Settings(var_dir=tmp_path_factory.mktemp("r"), clickhouse={"path": chdb_path, "database": "r_x"})
    client = connect(s)
    migrate.migrate(client, s)
    yield client
    client.close()


@st.composite
def histories(draw: st.DrawFn) -> list[dict]:
    """Per event: version 1, maybe corrected to version 2 with another attribution; all in send order, with
    exact re-sends sprinkled in."""
    out = []
    for i in range(draw(st.integers(1, 25))):
        user = f"u{draw(st.integers(0, 6))}"
        typ = draw(st.sampled_from(["install", "reinstall", "signup", "purchase", "open"]))
        t = DAY0 + timedelta(hours=draw(st.integers(0, 71)))
        money: dict[str, Any] = {"revenue": None, "currency": None}
        if typ == "purchase":
            money = {"revenue": draw(st.decimals("0.01", "99.99", places=2)), "currency": draw(st.sampled_from(
                ["USD", "EUR"]))}

        for v in (1, 2) if draw(st.booleans()) else (1,):  # version 2: the same event with another attribution
            ms, camp, aset = draw(st.sampled_from(SOURCES))
            ft = touch(f"{user}-i", t, ms, camp, aset) if ms else None
            out.append(event(f"e{i}", user, "app", typ, t, version=v, ft=ft,
                             status="attributed" if ft else "pending_timeout", **money))
    for rec in draw(st.lists(st.sampled_from(out), max_size=8)):
        out.insert(draw(st.integers(0, len(out))), dict(rec))
    return out


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories(), st.integers(1, 7), st.booleans())
def test_rollups_match_the_latest_versions_whatever_the_batching(warehouse, recs, batch, tokenless_replay):
    client = warehouse
    client.command("TRUNCATE TABLE r_x.events")
    client.command("TRUNCATE TABLE r_x.daily_rollups")
    final: dict = {}
    for r in recs:  # versions may arrive in any order: the highest wins, ties are identical re-sends
        if r["event_id"] not in final or r["version"] >= final[r["event_id"]]["version"]:
            final[r["event_id"]] = r
    chunks = [recs[i:i + batch] for i in range(0, len(recs), batch)]
    for n, chunk in enumerate(chunks):
        data = [rows.event_row(r) for r in chunk]
        token = {"insert_deduplication_token": f"{uuid.uuid4().hex}-{n}"}
        for _ in range(2):  # every batch retried once with its token: dropped by ClickHouse
            client.insert("r_x.events", data, column_names=rows.EVENT_COLUMNS, settings={"async_insert": 0, **token})
        if tokenless_replay:  # a crash re-read: the same rows again without the token, physically duplicated
            client.insert("r_x.events", data, column_names=rows.EVENT_COLUMNS,
                          settings={"async_insert": 0, "insert_deduplicate": 0})
        if n % 2 == 0:  # rebuild part-way, as the sink does while loads continue
            rollups.refresh(client, "r_x", {r["event_time"].date() for r in chunk})
    rollups.refresh(client, "r_x", {r["event_time"].date() for r in recs})
    got = {tuple(r[:6]): (r[6], r[7], r[8], r[9], dict(r[10]), r[11], r[12]) for r in client.query(
        "SELECT day, app_id, media_source, campaign, ad_set, platform, installs, reinstalls, signups, purchases, "
        "revenue, users, events FROM r_x.daily_rollups").result_rows}
    want = {k: (g["installs"], g["reinstalls"], g["signups"], g["purchases"],
                {c: v for c, v in g["revenue"].items()}, len(g["users"]), g["events"])
            for k, g in truth_rollups(final).items()}
    assert got == want
