"""Read-only SQL over loopback HTTP, served by the process that owns the embedded warehouse.

chdb allows one process per directory, so while the sink runs nobody else can open the warehouse; this server lets
``attrib sql`` (and the ``attrib run`` report) ask it instead. Queries run with ``readonly=2`` (reads, and settings
changes, but no writes or DDL) — ClickHouse itself enforces it. Also ``/health`` and ``/metrics`` (Prometheus text)
for the operator; in server mode only those two are served (query the server directly).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from clickhouse_connect.driver.client import Client

from attrib.errors import AttribError
from sinks import clickhouse

log = logging.getLogger("attrib.sink.query")

FORMATS = {"table": "PrettyCompactMonoBlock", "csv": "CSVWithNames", "json": "JSONEachRow", "tsv": "TSVWithNames"}
READ_ONLY = {"readonly": 2, "output_format_json_quote_64bit_integers": 0, "output_format_json_quote_decimals": 0}
MAX_SQL_BYTES = 1 << 20
CH_FORMAT = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")  # a ClickHouse output format name (JSON, Parquet, …)


class QueryServer:
    def __init__(self, port: int, client_factory: Callable[[], Client] | None,
                 metrics: Callable[[], str], health: Callable[[], dict], host: str = "127.0.0.1") -> None:
        self._client_factory = client_factory
        self._client: Client | None = None
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                u = urlparse(self.path)
                if u.path == "/health":
                    h = health()
                    self._send(200 if h.get("status") == "ok" else 503, json.dumps(h).encode(), "application/json")
                elif u.path == "/metrics":
                    self._send(200, metrics().encode(), "text/plain; version=0.0.4")
                elif u.path == "/sql":
                    q = parse_qs(u.query)
                    self._sql(q.get("query", [""])[0], q.get("format", ["table"])[0])
                else:
                    self._send(404, b"not found\n")

            def do_POST(self) -> None:
                u = urlparse(self.path)
                if u.path != "/sql":
                    self._send(404, b"not found\n")
                    return
                n = int(self.headers.get("content-length") or 0)
                if n > MAX_SQL_BYTES:
                    self._send(413, b"query too large\n")
                    return
                self._sql(self.rfile.read(n).decode("utf-8", "replace"), parse_qs(u.query).get("format", ["table"])[0])

            def _sql(self, sql: str, fmt: str) -> None:
                if server._client_factory is None:
                    self._send(404, b"SQL is served here only in embedded mode: query the ClickHouse server\n")
                    return
                ch_format = FORMATS.get(fmt) or (fmt if CH_FORMAT.fullmatch(fmt) else None)
                if ch_format is None:
                    self._send(400, f"unknown format {fmt!r}; one of {', '.join(FORMATS)} or a ClickHouse "
                                    f"output format name\n".encode())
                    return
                if not sql.strip():
                    self._send(400, b"empty query\n")
                    return
                try:
                    body = server.query(sql, ch_format)
                except AttribError as exc:  # the ClickHouse message is the useful answer
                    self._send(400, (str(exc).strip() + "\n").encode())
                    return
                self._send(200, body, "text/plain; charset=utf-8")

            def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
                self.send_response(code)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    def query(self, sql: str, fmt: str) -> bytes:
        # one client, one query at a time: analysts' queries are rare, the sink has its own client
        with self._lock, clickhouse.calls():
            if self._client is None:
                assert self._client_factory is not None
                self._client = self._client_factory()
            return self._client.raw_query(sql, settings=READ_ONLY, fmt=fmt)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="attrib-sql", daemon=True)
        self._thread.start()
        log.info("query server listening", extra={"fields": {"port": self.port,
                                                             "sql": self._client_factory is not None}})

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._client is not None:
            self._client.close()
