"""Versioned SQL migrations (sinks/migrations/NNNN_name.sql), applied once each, in order, idempotently.

Files use ``${database}`` for the target database. Statements are separated by ``;`` at the end of a line. An
applied migration whose file later changes is an error: write a new migration instead of editing an old one.

Files are written for one node. With ``clickhouse.cluster`` set, :func:`render` rewrites each statement for the
cluster: ``ON CLUSTER``, Replicated engines, and for sharded tables a ``<table>_local`` per shard plus a Distributed
table under the original name, so analysts' queries are the same on one node and on a cluster.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from clickhouse_connect.driver.client import Client

from attrib.errors import AttribError
from attrib.settings import Settings
from sinks import partners

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_SUPERSEDES = re.compile(r"^-- supersedes: ([\d, ]+)$", re.M)


class MigrationError(AttribError):
    """The migrations cannot be applied as they are (a changed file, a bad name, no cluster layout): an operator
    must fix the files, so neither retryable nor a configuration value."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def supersedes(self) -> set[int]:
        """Earlier versions this one replaces (``-- supersedes: 0003, 0004``): skipped where not yet applied."""
        m = _SUPERSEDES.search(self.sql)
        return {int(v) for v in re.findall(r"\d+", m[1])} if m else set()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self, database: str) -> list[str]:
        body = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        body = body.replace("${database}", database)
        return [s.strip() for s in re.split(r";\s*$", body, flags=re.M) if s.strip()]


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"bad migration file name {path.name!r}: expected NNNN_snake_case.sql")
        found.append(Migration(int(m[1]), m[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return found


# Cluster layout. Sharded tables are split by a key that keeps every version of an event, and every event of a user,
# on one shard: FINAL then deduplicates correctly per shard and per-user metrics never need a cross-shard join.
SHARD_KEYS = {
    "events": "cityHash64(user_key)",
    "raw_deliveries": "cityHash64(user_key)",
    "dead_letters": "cityHash64(dead_letter_id)",
    "dead_letter_resolutions": "cityHash64(dead_letter_id)",  # co-sharded with dead_letters (issue 8)
    "alerts": "cityHash64(alert_id)",
}
# Small tables replicated whole to every node (one replica set across the cluster, no Distributed table): the rollups
# are rebuilt from the Distributed `events` and swapped in with REPLACE PARTITION, which replicates.
GLOBAL_TABLES = {"daily_rollups", "schema_migrations", "partner_map", "fx_rates", "fx_daily"}
# Bookkeeping of the process on each node (no replication, no Distributed table).
NODE_TABLES = {"rollup_dirty_days"}

_CREATE_DB = re.compile(r"^CREATE DATABASE IF NOT EXISTS (\w+)$", re.S)
_CREATE_TABLE = re.compile(
    r"^CREATE TABLE IF NOT EXISTS (?P<db>\w+)\.(?P<table>\w+)(?P<body>.*?)\bENGINE\s*=\s*(?P<family>\w*)MergeTree"
    r"(?:\((?P<args>[^)]*)\))?(?P<rest>.*)$", re.S)
_CREATE_NULL = re.compile(r"^CREATE TABLE IF NOT EXISTS (?P<name>\w+\.\w+)(?P<rest>.*\bENGINE\s*=\s*Null)$", re.S)
_CREATE_VIEW = re.compile(r"^CREATE VIEW IF NOT EXISTS (?P<name>\w+\.\w+)(?P<rest>\s+AS\s.*)$", re.S)
_CREATE_MV = re.compile(r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (?P<name>\w+\.\w+)(?P<rest>\s+TO\s.*)$", re.S)
_DROP = re.compile(r"^DROP (?P<kind>TABLE|VIEW) IF EXISTS (?P<name>\w+\.\w+)$")
_ALTER = re.compile(r"^ALTER TABLE (?P<db>\w+)\.(?P<table>\w+)\s(?P<ops>.*)$", re.S)
_LOCAL_ONLY_OPS = re.compile(r"^\s*(MODIFY TTL|MODIFY SETTING|REMOVE TTL|MATERIALIZE)", re.I)


def render(stmt: str, cluster: str | None) -> list[str]:
    """One single-node statement → the statements for ``cluster`` (unchanged when cluster is None)."""
    if cluster is None:
        return [stmt]
    on = f"ON CLUSTER '{cluster}'"
    if m := _CREATE_DB.match(stmt):
        return [f"CREATE DATABASE IF NOT EXISTS {m[1]} {on}"]
    if m := _DROP.match(stmt):  # only per-node objects (landing tables, views) are ever dropped by migrations
        return [f"DROP {m['kind']} IF EXISTS {m['name']} {on} SYNC"]
    if m := _CREATE_NULL.match(stmt):  # landing tables: one per node, writing through their views
        return [f"CREATE TABLE IF NOT EXISTS {m['name']} {on}{m['rest']}"]
    if m := _CREATE_VIEW.match(stmt):  # plain (query) views: one per node, reading the Distributed tables
        return [f"CREATE VIEW IF NOT EXISTS {m['name']} {on}{m['rest']}"]
    if m := _CREATE_MV.match(stmt):  # `TO events` then names the Distributed table: rows go to their shard
        return [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {m['name']} {on}{m['rest']}"]
    if m := _CREATE_TABLE.match(stmt):
        db, table, family, rest = m["db"], m["table"], m["family"], m["rest"]
        args = f", {m['args'].strip()}" if m["args"] and m["args"].strip() else ""
        if table in NODE_TABLES:
            plain = f"{family}MergeTree" + (f"({m['args']})" if m["args"] is not None else "")
            return [f"CREATE TABLE IF NOT EXISTS {db}.{table} {on}{m['body']}ENGINE = {plain}{rest}"]
        if table in GLOBAL_TABLES:
            engine = f"Replicated{family}MergeTree('/clickhouse/tables/all/{db}/{table}', '{{replica}}'{args})"
            return [f"CREATE TABLE IF NOT EXISTS {db}.{table} {on}{m['body']}ENGINE = {engine}{rest}"]
        key = _shard_key(table)
        local = f"{table}_local"
        engine = f"Replicated{family}MergeTree('/clickhouse/tables/{{shard}}/{db}/{local}', '{{replica}}'{args})"
        return [
            f"CREATE TABLE IF NOT EXISTS {db}.{local} {on}{m['body']}ENGINE = {engine}{rest}",
            f"CREATE TABLE IF NOT EXISTS {db}.{table} {on} AS {db}.{local} "
            f"ENGINE = Distributed('{cluster}', '{db}', '{local}', {key})",
        ]
    if m := _ALTER.match(stmt):
        db, table, ops = m["db"], m["table"], m["ops"]
        if table in GLOBAL_TABLES or table in NODE_TABLES:
            return [f"ALTER TABLE {db}.{table} {on} {ops}"]
        _shard_key(table)
        out = [f"ALTER TABLE {db}.{table}_local {on} {ops}"]
        if not _LOCAL_ONLY_OPS.match(ops):  # column changes must reach the Distributed table too
            out.append(f"ALTER TABLE {db}.{table} {on} {ops}")
        return out
    raise MigrationError(f"cannot render for a cluster (write CREATE/ALTER TABLE {{db}}.name …): {stmt[:80]!r}")


def _shard_key(table: str) -> str:
    try:
        return SHARD_KEYS[table]
    except KeyError:
        raise MigrationError(f"table {table!r} has no cluster layout: add it to SHARD_KEYS or GLOBAL_TABLES") from None


def local_table(table: str, cluster: str | None) -> str:
    """Where a table's rows physically live (for ALTERs that Distributed tables refuse)."""
    return f"{table}_local" if cluster and table in SHARD_KEYS else table


def plan(database: str, cluster: str | None, migrations: list[Migration] | None = None) -> list[str]:
    """Every statement :func:`apply` would run on an empty database, in order (for review and tests)."""
    migrations = discover() if migrations is None else migrations
    out = [s for b in _bootstrap(database) for s in render(b, cluster)]
    superseded = {v for m in migrations for v in m.supersedes}
    for mig in migrations:
        if mig.version in superseded:
            continue
        out += [s for stmt in mig.statements(database) for s in render(stmt, cluster)]
    return out


def _bootstrap(database: str) -> list[str]:
    return [
        f"CREATE DATABASE IF NOT EXISTS {database}",
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version",
    ]


def migrate(client: Client, settings: Settings) -> list[Migration]:
    """What ``attrib migrate`` does: pending migrations for the configured target, then settings-driven TTLs."""
    ch = settings.clickhouse
    done = apply(client, ch.database, cluster=ch.cluster)
    sync_raw_ttl(client, settings)
    partners.sync(client, ch.database, partners.mapping(settings))
    return done


def sync_raw_ttl(client: Client, settings: Settings) -> bool:
    """Make the raw_deliveries TTL match ``sink.raw_ttl_days``; return True when it had to change."""
    ch = settings.clickhouse
    table = local_table("raw_deliveries", ch.cluster)
    engine = client.query("SELECT engine_full FROM system.tables WHERE database = {d:String} AND name = {t:String}",
                          parameters={"d": ch.database, "t": table}).result_rows
    want = f"toDateTime(received_at) + toIntervalDay({settings.sink.raw_ttl_days})"
    if not engine or want in engine[0][0]:
        return False
    on = f" ON CLUSTER '{ch.cluster}'" if ch.cluster else ""
    client.command(f"ALTER TABLE {ch.database}.{table}{on} MODIFY TTL toDateTime(received_at) + "
                   f"INTERVAL {settings.sink.raw_ttl_days} DAY")
    return True


def apply(client: Client, database: str, migrations: list[Migration] | None = None,
          cluster: str | None = None) -> list[Migration]:
    """Apply pending migrations; return those applied now."""
    migrations = discover() if migrations is None else migrations
    for b in _bootstrap(database):
        for stmt in render(b, cluster):
            client.command(stmt)
    rows = client.query(f"SELECT version, checksum FROM {database}.schema_migrations FINAL").result_rows
    applied = {int(v): c for v, c in rows}
    superseded = {v for m in migrations for v in m.supersedes}
    done = []
    for mig in migrations:
        if mig.version in applied:
            if applied[mig.version] != mig.checksum:
                raise MigrationError(f"migration {mig.version:04d}_{mig.name} changed after it was applied")
            continue
        if mig.version in superseded:  # a later migration does its job (and fixes it): record it, don't run it
            client.insert(f"{database}.schema_migrations", [[mig.version, mig.name, mig.checksum]],
                          column_names=["version", "name", "checksum"])
            continue
        for stmt in mig.statements(database):
            for rendered in render(stmt, cluster):
                client.command(rendered)
        client.insert(f"{database}.schema_migrations", [[mig.version, mig.name, mig.checksum]],
                      column_names=["version", "name", "checksum"])
        done.append(mig)
    return done
