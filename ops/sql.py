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


def run_sql(s: Settings, sql: str, fmt: str = "table", url: str | None = None, timeout: float = 60.0) -> bytes:
    """The query's result in the given output format (table|csv|json|tsv), wherever the warehouse is."""
    sql = sql.strip().removesuffix(";").rstrip()  # a pasted statement's ';' would precede the FORMAT clause
    if url is None and s.clickhouse.embedded:
        req = urllib.request.Request(f"http://127.0.0.1:{s.sink.query_port}/sql?format={fmt}",
                                     data=sql.encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            raise SqlError(exc.read().decode("utf-8", "replace").strip()) from None
        except (urllib.error.URLError, ConnectionError):
            pass  # no sink serving: open the directory ourselves (fails clearly if another process holds it)
    try:
        client = connect(s, database=s.clickhouse.database, url=url)
    except ClickHouseUnavailable as exc:
        raise SqlError(f"cannot open the warehouse: {exc}") from None
    try:
        with calls():
            return client.raw_query(sql, settings=READ_ONLY, fmt=FORMATS[fmt])
    except AttribError as exc:  # the query refused, or the warehouse gone meanwhile: ClickHouse's message
        raise SqlError(str(exc).strip()) from None
    finally:
        close(client)


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
        sys.stdout.buffer.write(out)
        sys.stdout.flush()
    return 1 if failed else 0
