"""Versioned SQL migrations (sinks/migrations/NNNN_name.sql), applied once each, in order, idempotently.

Files use ``${database}`` for the target database. Statements are separated by ``;`` at the end of a line. An
applied migration whose file later changes is an error: write a new migration instead of editing an old one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from clickhouse_connect.driver.client import Client

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

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


def apply(client: Client, database: str, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply pending migrations; return those applied now."""
    migrations = discover() if migrations is None else migrations
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    rows = client.query(f"SELECT version, checksum FROM {database}.schema_migrations FINAL").result_rows
    applied = {int(v): c for v, c in rows}
    done = []
    for mig in migrations:
        if mig.version in applied:
            if applied[mig.version] != mig.checksum:
                raise MigrationError(f"migration {mig.version:04d}_{mig.name} changed after it was applied")
            continue
        for stmt in mig.statements(database):
            client.command(stmt)
        client.insert(f"{database}.schema_migrations", [[mig.version, mig.name, mig.checksum]],
                      column_names=["version", "name", "checksum"])
        done.append(mig)
    return done
