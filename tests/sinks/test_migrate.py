"""Embedded ClickHouse through clickhouse-connect: migrations are idempotent and typed rows round-trip."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from sinks import migrate
from sinks.clickhouse import connect


def pairs(rows: Sequence[Sequence[Any]]) -> dict[Any, Any]:
    """Two-column query rows as a dict."""
    return {r[0]: r[1] for r in rows}


def test_migrations_apply_once_and_typed_rows_round_trip(make_settings):
    s = make_settings()
    client = connect(s)
    db = s.clickhouse.database
    first = migrate.apply(client, db)
    every = migrate.discover()
    superseded = {v for m in every for v in m.supersedes}
    assert superseded and [m.version for m in first] == [m.version for m in every if m.version not in superseded]
    assert migrate.apply(client, db) == []  # second run: nothing pending, no error

    t = datetime(2024, 6, 20, 6, 18, 22, 417000, tzinfo=UTC)
    row = {"event_id": "1336547281934529118", "version": 1, "mmp": "branch", "source": "branch-prod",
           "app_id": "com.example", "event_name": "INSTALL", "event_type": "install", "event_time": t,
           "received_at": t, "user_key": "android_id:9c2e7d41b8a05f36", "platform": "android",
           "media_source": "Facebook", "campaign": "IN_AppInstall_Jun24", "is_organic": False,
           "revenue": Decimal("4.990000"), "currency": "USD", "properties": '{"city":"Mumbaī"}',
           "attribution_status": "attributed", "raw_topic": "raw", "raw_partition": 3, "raw_offset": 42}
    cols = list(row)
    client.insert(f"{db}.events", [list(row.values())], column_names=cols)
    # a newer version of the same event replaces it for readers using FINAL
    vals = list(row.values())
    client.insert(f"{db}.events", [[vals[0], 2, *vals[2:]]], column_names=cols)
    got = client.query(f"SELECT {', '.join(cols)} FROM {db}.events FINAL").result_rows
    assert len(got) == 1
    back = dict(zip(cols, got[0], strict=True))
    assert back["version"] == 2
    assert back["event_time"].replace(tzinfo=UTC) == t
    assert back["revenue"] == Decimal("4.99") and back["is_organic"] is False
    assert back["properties"] == '{"city":"Mumbaī"}'
    client.close()


def test_changed_migration_is_refused(make_settings, tmp_path):
    s = make_settings()
    client = connect(s)
    mig = migrate.Migration(1, "t", "CREATE TABLE IF NOT EXISTS ${database}.t (x UInt8) ENGINE = Memory;")
    assert migrate.apply(client, s.clickhouse.database, [mig]) == [mig]
    edited = migrate.Migration(1, "t", mig.sql + "\n-- edited")
    with pytest.raises(migrate.MigrationError, match="changed after it was applied"):
        migrate.apply(client, s.clickhouse.database, [edited])
    client.close()


SERVER_DEFAULTS = {"enable_nullable_tuple_type": 0, "allow_experimental_nullable_tuple_type": 0}


def _server_like_client(s):
    """The embedded engine with a ClickHouse server's defaults for beta types (chdb enables Nullable(Tuple))."""
    import clickhouse_connect

    return clickhouse_connect.get_client(interface="chdb", path=str(s.clickhouse_path.resolve()),
                                         settings={"async_insert": 0, **SERVER_DEFAULTS})


def test_fresh_database_skips_superseded_migrations_and_needs_no_beta_types(make_settings):
    s = make_settings()
    db = s.clickhouse.database
    client = _server_like_client(s)
    old = next(m for m in migrate.discover() if m.version == 3)
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}_probe")
    with pytest.raises(Exception, match=r"(?i)nullable"):  # what 0003 alone would do on a server
        for stmt in old.statements(f"{db}_probe"):
            client.command(stmt)
    done = migrate.apply(client, db)
    assert [m.version for m in done if m.version <= 5] == [1, 2, 5]  # later migrations are not about this
    assert sorted(r[0] for r in client.query(f"SELECT version FROM {db}.schema_migrations FINAL").result_rows
                  if r[0] <= 5) == [1, 2, 3, 4, 5]
    types = pairs(client.query(f"SELECT name, type FROM system.columns WHERE database = '{db}' "
                       "AND table = 'events_avro_in'").result_rows)
    assert types["raw"].startswith("Tuple(") and types["first_touch"].startswith("Tuple(")
    assert migrate.apply(client, db) == []
    client.close()


def test_database_that_applied_0003_gets_the_portable_landing_table_and_still_loads(make_settings):
    from datetime import date

    from schemas import avro
    from sinks import landing
    from sinks.service import FAST_SETTINGS
    from tests.sinks.fixtures import traffic

    s = make_settings()
    db = s.clickhouse.database
    client = connect(s)
    every = migrate.discover()
    assert [m.version for m in migrate.apply(client, db, [m for m in every if m.version <= 4])] == [1, 2, 3, 4]
    assert [m.version for m in migrate.apply(client, db) if m.version <= 5] == [5]
    types = pairs(client.query(f"SELECT name, type FROM system.columns WHERE database = '{db}' "
                       "AND table = 'events_avro_in'").result_rows)
    assert types["raw"].startswith("Tuple(")
    tr = traffic(users=15, seed=4)
    blobs = [avro.encode("enriched_event", r) for r in tr.final.values()]
    w = landing.writers()[blobs[0][2:10]]
    client.raw_insert(f"{db}.events_avro_in", insert_block=landing.container(w, [b[10:] for b in blobs]),
                      fmt="Avro", settings=FAST_SETTINGS)
    got = pairs(client.query(f"SELECT event_id, (first_touch_media_source, raw_offset) FROM {db}.events FINAL"
                             ).result_rows)
    assert got == {e["event_id"]: ((e["first_touch"] or {}).get("media_source"), e["raw"]["offset"])
                   for e in tr.final.values()}
    days = {r[0] for r in client.query(f"SELECT day FROM {db}.rollup_dirty_days").result_rows}
    assert days == {e["event_time"].date() for e in tr.final.values()} and all(isinstance(d, date) for d in days)
    client.close()
