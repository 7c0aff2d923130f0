"""`attrib worker`: run the Faust stream worker (raw deliveries → enriched events)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from attrib.settings import Settings

HELP = "run the stream worker: dedupe, buffer until install, enrich with attribution (Faust)"
log = logging.getLogger("attrib.worker")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, help="this worker's own state directory (default streams.data_dir or "
                                                 "<var_dir>/worker); one per worker process")
    p.add_argument("--store", help="memory:// or rocksdb:// (default streams.store)")
    p.add_argument("--metrics-port", type=int, help="Prometheus port (default streams.metrics_port; 0 = off)")


def use_event_loop(name: str) -> None:
    """Must run before the Faust app exists: its loop (and the consumer thread's) come from the policy."""
    if name == "uvloop":
        import asyncio

        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main(args: argparse.Namespace, settings: Settings) -> int:
    from faust.worker import Worker

    from attrib.topics import ensure_topics
    from streams import compat
    from streams.app import build_app

    try:
        compat.check_versions()  # before touching Kafka: the patches are only known to hold for these versions
    except compat.UnsupportedVersions as exc:
        print(f"attrib worker: {exc}", file=sys.stderr)
        return 2
    s = settings.streams
    use_event_loop(s.event_loop)
    store = args.store or s.store
    if not store.startswith(("memory://", "rocksdb://", "rocksdict://")):
        print(f"attrib worker: unsupported store {store!r} (memory:// or rocksdb://)", file=sys.stderr)
        return 2
    data_dir = args.data_dir or s.data_dir or settings.var_dir / "worker"
    data_dir.mkdir(parents=True, exist_ok=True)
    ensure_topics(settings)
    port = s.metrics_port if args.metrics_port is None else args.metrics_port
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr=s.metrics_host)
    app = build_app(settings, data_dir, store)
    log.info("worker starting", extra={"fields": {"store": store, "data_dir": str(data_dir), "metrics_port": port,
                                                  "raw": settings.topics.raw, "events": settings.topics.events}})
    worker = Worker(app, loglevel=settings.log_level, quiet=True, override_logging=False, redirect_stdouts=False)
    worker.execute_from_commandline()  # returns on SIGTERM/SIGINT after a clean shutdown (offsets committed)
    return 0
