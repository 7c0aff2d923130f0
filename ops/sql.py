"""`attrib sql "SELECT …"`: ask the live warehouse.

Embedded mode: the running sink owns the chdb directory, so the query goes to its loopback port
(``sink.query_port``); if no sink runs, the directory is opened directly. Server mode (``clickhouse.url`` or
``--url``): the server is queried directly. Unqualified table names resolve in ``clickhouse.database``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.request
from typing import Any

from attrib.errors import AttribError
from attrib.settings import Settings
from sinks.clickhouse import ClickHouseUnavailable, calls, close, connect
from sinks.query import FORMATS, READ_ONLY

HELP = "run a read-only SQL query against the warehouse (live embedded sink or a ClickHouse server)"


class SqlError(AttribError):
    """The query failed or the warehouse could not be opened; the message is the one line to show."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", nargs="?", default="-", help="SQL text, or - (default) to read it from stdin")
    parser.add_argument("--format", choices=sorted(FORMATS), default="table")
    parser.add_argument("--url", help="query this ClickHouse server (http(s)://user:password@host:port)")


_FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+([A-Za-z][A-Za-z0-9]*)\s*$", re.I)


def own_format(sql: str) -> tuple[str, str | None]:
    """(the query without a trailing ``FORMAT Name`` clause, that ClickHouse format name or None)."""
    m = _FORMAT_CLAUSE.search(sql)
    return (sql[:m.start()].rstrip(), m[1]) if m else (sql, None)


def _quote(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def finalized(columns: list[tuple[str, str]], sql: str) -> str:
    """``sql`` with every aggregate-state column (``AggregateFunction(…)``, binary in any text format) replaced by its
    value via finalizeAggregation; a state nested in another type cannot be finalized: SqlError naming the column."""
    states = []
    for name, typ in columns:
        if typ.startswith("AggregateFunction("):
            states.append(name)
        elif "AggregateFunction(" in typ:
            raise SqlError(f"column {name!r} holds aggregate states inside {typ}: select it with "
                           f"finalizeAggregation() or the matching -Merge function")
    if not states:
        return sql
    replace = ", ".join(f"finalizeAggregation({_quote(n)}) AS {_quote(n)}" for n in states)
    return f"SELECT * REPLACE ({replace}) FROM (\n{sql}\n)"


def run_sql(s: Settings, sql: str, fmt: str = "table", url: str | None = None, timeout: float = 60.0) -> bytes:
    """The query's result in the given output format (table|csv|json|tsv, or the query's own ``FORMAT`` clause),
    wherever the warehouse is; aggregate-state columns come out finalized (their values, not binary states)."""
    sql = sql.strip().removesuffix(";").rstrip()  # a pasted statement's ';' would precede the FORMAT clause
    sql, ch_format = own_format(sql)
    with _Target(s, url, timeout) as ask:
        try:
            described = ask(f"DESCRIBE (\n{sql}\n)", "JSONEachRow")
        except _QueryFailed:
            described = None  # not a SELECT (SHOW, EXPLAIN, …) or an error the query itself will report
        if described is not None:
            cols = [json.loads(line) for line in described.decode().splitlines() if line.strip()]
            sql = finalized([(c["name"], c["type"]) for c in cols], sql)
        return ask(sql, ch_format or FORMATS[fmt])


class _QueryFailed(SqlError):
    """The warehouse answered with an error (as opposed to: could not be reached or opened)."""


class _Target:
    """Where this invocation's queries go, decided once: the running sink's query port, else the warehouse opened
    here (kept open for all of them: chdb's directory lock must not be taken and released between two queries)."""

    def __init__(self, s: Settings, url: str | None, timeout: float) -> None:
        self.s, self.url, self.timeout = s, url, timeout
        self.via_sink = url is None and s.clickhouse.embedded
        self.client: Any = None

    def __enter__(self) -> _Target:
        return self

    def __exit__(self, *_: object) -> None:
        if self.client is not None:
            close(self.client)

    def __call__(self, sql: str, ch_format: str) -> bytes:
        if self.via_sink:
            req = urllib.request.Request(f"http://127.0.0.1:{self.s.sink.query_port}/sql?format={ch_format}",
                                         data=sql.encode(), method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return bytes(resp.read())
            except urllib.error.HTTPError as exc:
                raise _QueryFailed(exc.read().decode("utf-8", "replace").strip()) from None
            except (urllib.error.URLError, ConnectionError):
                self.via_sink = False  # no sink serving: open the directory ourselves (fails clearly if held)
        if self.client is None:
            try:
                self.client = connect(self.s, database=self.s.clickhouse.database, url=self.url)
            except ClickHouseUnavailable as exc:
                raise SqlError(f"cannot open the warehouse: {exc}") from None
        try:
            with calls():
                return bytes(self.client.raw_query(sql, settings=READ_ONLY, fmt=ch_format))
        except AttribError as exc:  # the query refused, or the warehouse gone meanwhile: ClickHouse's message
            raise _QueryFailed(str(exc).strip()) from None


def query_rows(s: Settings, sql: str, url: str | None = None) -> list[dict[str, Any]]:
    """Rows as dicts (JSON types: numbers, strings, lists, objects)."""
    body = run_sql(s, sql, "json", url)
    return [json.loads(line) for line in body.decode().splitlines() if line.strip()]


def statements(text: str) -> list[tuple[str, str]]:
    """Split a script (e.g. all of docs/queries.sql) into (label, statement): statements end with ';' at a line end;
    the label is the statement's ``-- name:`` header, if any."""
    out = []
    for chunk in re.split(r";[ \t]*$", text, flags=re.M):
        code = "\n".join(line for line in chunk.splitlines() if not line.lstrip().startswith("--")).strip()
        if code:
            name = re.search(r"^-- name: (\S+)", chunk, re.M)
            out.append((name[1] if name else "", chunk.strip()))
    return out


def main(args: argparse.Namespace, s: Settings) -> int:
    text = sys.stdin.read() if args.query == "-" else args.query
    stmts = statements(text) or [("", text)]
    failed = 0
    for i, (name, sql) in enumerate(stmts):
        if len(stmts) > 1 and args.format == "table":
            print(f"{'' if i == 0 else chr(10)}-- {name or f'statement {i + 1}'}", flush=True)
        try:
            out = run_sql(s, sql, args.format, args.url)
        except SqlError as exc:
            print(f"attrib sql: {f'{name}: ' if name else ''}{exc}", file=sys.stderr)
            failed += 1
            continue
        if out.strip():
            sys.stdout.buffer.write(out)
        else:  # nothing at all (table, JSON formats) looks like a hang or a failure: say it
            print("0 rows", file=sys.stdout if args.format == "table" and not own_format(sql)[1] else sys.stderr)
        sys.stdout.flush()
    return 1 if failed else 0
