"""Cluster mode: the generated DDL (ON CLUSTER, Replicated engines, Distributed tables under analysts' names) parses
in the real engine and keeps the single-node semantics (same columns, sort keys, version column, TTL)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sinks import migrate

CLUSTER = "prod_cluster"


@pytest.fixture(scope="module")
def statements() -> list[str]:
    return migrate.plan("attribution", CLUSTER)


def test_every_statement_is_on_the_cluster_and_parses(statements, make_settings):
    from sinks.clickhouse import connect

    client = connect(make_settings())
    for stmt in statements:
        assert f"ON CLUSTER '{CLUSTER}'" in stmt, stmt[:120]
        # formatQuery parses with the engine's own parser without executing (no cluster exists here)
        client.query("SELECT formatQuery({q:String})", parameters={"q": stmt})
    client.close()


def test_sharded_tables_are_replicated_locally_and_distributed_under_their_names(statements):
    single = migrate.plan("attribution", None)
    for table, key in migrate.SHARD_KEYS.items():
        local = next(s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS attribution.{table}_local "))
        dist = next(s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS attribution.{table} "))
        engine = re.search(r"ENGINE = (\w+)\(([^)]*)\)", local)
        assert engine and engine[1].startswith("Replicated") and engine[1].endswith("MergeTree")
        assert engine[2].startswith(f"'/clickhouse/tables/{{shard}}/attribution/{table}_local', '{{replica}}'")
        assert dist.endswith(f"ENGINE = Distributed('{CLUSTER}', 'attribution', '{table}_local', {key})")
        orig = next(s for s in single if re.match(rf"CREATE TABLE IF NOT EXISTS attribution\.{table}\b", s))
        # same columns, partitioning, sort key, TTL and settings as on one node: only name and engine differ
        def parts(ddl: str) -> tuple[str, str]:
            m = re.search(r"^CREATE TABLE IF NOT EXISTS \S+(?: ON CLUSTER '\w+')?(.*?)ENGINE = \w+(?:\([^)]*\))?(.*)$",
                          ddl, re.S)
            assert m
            return m[1], m[2]
        assert parts(local) == parts(orig)
    events = next(s for s in statements if "attribution.events_local" in s and s.startswith("CREATE"))
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/attribution/events_local', '{replica}', version)" \
        in events
    raw = next(s for s in statements if "attribution.raw_deliveries_local" in s and s.startswith("CREATE"))
    assert "TTL toDateTime(received_at) + INTERVAL 7 DAY" in raw


def test_column_changes_reach_local_and_distributed_tables_but_ttl_only_local(statements):
    alters = [s for s in statements if s.startswith("ALTER TABLE attribution.events")]
    assert [s.split()[2] for s in alters if "ADD COLUMN" in s] == ["attribution.events_local", "attribution.events"]
    # storage settings exist only where the rows are (a Distributed table refuses them)
    assert [s.split()[2] for s in alters if "MODIFY SETTING" in s] == ["attribution.events_local"]
    ttl = migrate.render("ALTER TABLE attribution.raw_deliveries MODIFY TTL toDateTime(received_at) + INTERVAL 3 DAY",
                         CLUSTER)
    assert ttl == ["ALTER TABLE attribution.raw_deliveries_local ON CLUSTER 'prod_cluster' "
                   "MODIFY TTL toDateTime(received_at) + INTERVAL 3 DAY"]


def test_rollups_and_migration_log_are_one_replica_set_across_the_cluster(statements):
    for table in migrate.GLOBAL_TABLES:
        stmts = [s for s in statements if re.match(rf"CREATE TABLE IF NOT EXISTS attribution\.{table}\b", s)]
        assert len(stmts) == 1 and "Distributed" not in stmts[0]
        assert f"('/clickhouse/tables/all/attribution/{table}', '{{replica}}'" in stmts[0]


def test_unknown_table_layout_is_refused():
    with pytest.raises(migrate.MigrationError, match="no cluster layout"):
        migrate.render("CREATE TABLE IF NOT EXISTS db.mystery (x UInt8) ENGINE = MergeTree ORDER BY x", CLUSTER)


@given(st.sampled_from(["events", "raw_deliveries", "dead_letters", "alerts"]),
       st.sampled_from(["ADD COLUMN IF NOT EXISTS x UInt8", "DROP COLUMN IF EXISTS y", "MODIFY SETTING a = 1"]))
def test_single_node_rendering_is_identity_and_cluster_alters_always_hit_the_local_table(table, op):
    stmt = f"ALTER TABLE db.{table} {op}"
    assert migrate.render(stmt, None) == [stmt]
    out = migrate.render(stmt, "c")
    assert out[0] == f"ALTER TABLE db.{table}_local ON CLUSTER 'c' {op}"
    assert len(out) == (1 if op.startswith("MODIFY SETTING") else 2)
