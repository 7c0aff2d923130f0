"""Embedded ClickHouse through clickhouse-connect: migrations are idempotent and typed rows round-trip."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from sinks import migrate
from sinks.clickhouse import connect


def test_migrations_apply_once_and_typed_rows_round_trip(make_settings):
    s = make_settings()
    client = connect(s)
    db = s.clickhouse.database
    first = migrate.apply(client, db)
    assert [m.version for m in first] == [m.version for m in migrate.discover()]
    assert migrate.apply(client, db) == []  # second run: nothing pending, no error

    t = datetime(2024, 6, 20, 6, 18, 22, 417000, tzinfo=timezone.utc)
    row = {"event_id": "1336547281934529118", "version": 1, "mmp": "branch", "source": "branch-prod",
           "app_id": "com.example", "event_name": "INSTALL", "event_type": "install", "event_time": t,
           "received_at": t, "user_key": "android_id:9c2e7d41b8a05f36", "platform": "android",
           "media_source": "Facebook", "campaign": "IN_AppInstall_Jun24", "is_organic": False,
           "revenue": Decimal("4.990000"), "currency": "USD", "properties": '{"city":"Mumbaī"}',
           "attribution_status": "attributed", "raw_topic": "raw", "raw_partition": 3, "raw_offset": 42}
    cols = list(row)
    client.insert(f"{db}.events", [list(row.values())], column_names=cols)
    # a newer version of the same event replaces it for readers using FINAL
    client.insert(f"{db}.events", [[*row.values()][:1] + [2] + list(row.values())[2:]], column_names=cols)
    got = client.query(f"SELECT {', '.join(cols)} FROM {db}.events FINAL").result_rows
    assert len(got) == 1
    back = dict(zip(cols, got[0]))
    assert back["version"] == 2
    assert back["event_time"].replace(tzinfo=timezone.utc) == t
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
