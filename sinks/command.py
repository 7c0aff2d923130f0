"""`attrib sink`: run the ClickHouse sink until SIGINT/SIGTERM (and, embedded, serve read-only SQL on loopback)."""

from __future__ import annotations

import argparse
import gc
import ipaddress
import logging
import signal
import threading
import time

from attrib.errors import ConfigurationError, Retryable
from attrib.settings import Settings
from sinks import migrate
from sinks.clickhouse import calls, close, connect, describe
from sinks.query import QueryServer
from sinks.service import Sink

HELP = "load Kafka topics into ClickHouse (events, dead letters, alerts, raw archive); serve `attrib sql`"
log = logging.getLogger("attrib.sink")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-migrate", action="store_true", help="do not apply pending migrations at start")
    parser.add_argument("--query-port", type=int, default=None, help="override sink.query_port (0 = any free port)")


def _migrate_until_ready(s: Settings, stop: threading.Event) -> bool:
    delay = s.sink.retry_initial_s
    while not stop.is_set():
        try:
            client = connect(s)
            try:
                with calls():
                    migrate.migrate(client, s)
            finally:
                close(client)
            return True
        except Retryable as exc:  # warehouse not up yet: wait for it, loudly
            log.error("clickhouse not ready for migrations; retrying", extra={"fields": {
                "target": describe(s), "retry_in_s": delay, "error": str(exc)[:300]}})
            stop.wait(delay)
            delay = min(delay * 2, s.sink.retry_max_s)
    return False


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(args: argparse.Namespace, s: Settings) -> int:
    embedded = s.clickhouse.embedded
    if embedded and not _loopback(s.sink.query_host):  # it would serve the warehouse's SQL to anyone, no login
        raise ConfigurationError(f"sink.query_host = {s.sink.query_host!r}: embedded mode serves SQL without a login, "
                                 "so it binds loopback only (set clickhouse.url for a server)")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if not args.no_migrate and not _migrate_until_ready(s, stop):
        return 0
    sink = Sink(s)

    def health() -> dict:
        down = sink.metrics.clickhouse_down_since
        return {"status": "ok" if down is None else "clickhouse_down", "target": describe(s),
                "consumed": sink.metrics.consumed, "inserted": sink.metrics.inserted,
                "clickhouse_down_s": round(time.monotonic() - down, 1) if down else 0.0}

    port = s.sink.query_port if args.query_port is None else args.query_port
    server = QueryServer(port, (lambda: connect(s, database=s.clickhouse.database)) if embedded else None,
                         sink.prometheus, health, host=s.sink.query_host)
    server.start()
    print(f"attrib sink: {describe(s)}, database {s.clickhouse.database}; "
          f"{'SQL, ' if embedded else ''}/health and /metrics on http://{s.sink.query_host}:{server.port}", flush=True)
    # This process is the sink's: what is loaded by now lives as long as it does. Freezing it spares the collector's
    # full passes (the consumer allocates a Kafka message object per record, ~100k a second at full speed) from
    # walking it again each time: a full pass went from ~60 to ~10 ms (bench/sink.py).
    gc.freeze()
    thread = sink.start()
    try:
        while not stop.is_set() and thread.is_alive():
            stop.wait(0.5)
    finally:
        sink.stop()
        server.stop()
    return 0 if stop.is_set() else 1
