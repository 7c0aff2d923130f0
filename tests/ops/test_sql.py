"""`attrib sql` as a user runs it (a real subprocess on an embedded warehouse no sink holds): the user's own FORMAT
clause, aggregate-state columns in CSV, and an empty result."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ops.sql import SqlError, finalized, own_format
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(240)
STATE = "SELECT toDate('2026-01-01') AS day, uniqState(toUInt64(number % 7)) AS `users seen`, count() AS n " \
        "FROM numbers(100) GROUP BY day"


def test_own_format_and_finalized_are_plain_rewrites() -> None:
    assert own_format("SELECT 1 format JSON") == ("SELECT 1", "JSON")
    assert own_format("SELECT 'FORMAT JSON' AS x") == ("SELECT 'FORMAT JSON' AS x", None)
    assert finalized([("a", "UInt8")], "SELECT 1 AS a") == "SELECT 1 AS a"
    assert "finalizeAggregation(`s`) AS `s`" in finalized([("s", "AggregateFunction(uniq, UInt64)")], "SELECT …")
    with pytest.raises(SqlError, match="'m'"):
        finalized([("m", "Map(String, AggregateFunction(sum, UInt64))")], "SELECT …")


def test_attrib_sql_formats_states_and_empty_results(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")} | {
        "ATTRIB_VAR_DIR": str(tmp_path / "var"), "ATTRIB_SINK__QUERY_PORT": str(free_port())}  # no sink serving

    def sql(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ops.cli", "sql", *args], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=120)

    subprocess.run([sys.executable, "-m", "ops.cli", "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    own = sql("SELECT 1 AS a, 'x' AS b FORMAT JSONEachRow;")
    assert (own.returncode, own.stdout) == (0, '{"a":1,"b":"x"}\n'), own.stderr

    csv = sql(STATE, "--format", "csv")
    assert csv.returncode == 0, csv.stderr
    assert csv.stdout.splitlines() == ['"day","users seen","n"', '"2026-01-01",7,100']  # the value, not the state
    rollups = sql("SELECT * FROM daily_rollups", "--format", "csv")  # the documented table, aggregate columns too
    assert rollups.returncode == 0 and rollups.stdout.startswith('"day"'), rollups.stderr

    nested = sql("SELECT [uniqState(1)] AS per_day")
    assert nested.returncode == 1 and "'per_day'" in nested.stderr and nested.stdout == ""

    empty = sql("SELECT * FROM daily_rollups")
    assert (empty.returncode, empty.stdout) == (0, "0 rows\n")
    empty_json = sql("SELECT * FROM daily_rollups", "--format", "json")  # machine output stays empty
    assert (empty_json.returncode, empty_json.stdout, empty_json.stderr.strip()) == (0, "", "0 rows")
