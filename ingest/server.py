"""``attrib ingest``: serve the webhook ingress, in one or several processes sharing the port (SO_REUSEPORT; the
kernel spreads connections). SIGTERM/SIGINT: stop accepting, let in-flight deliveries finish, drain the producer."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import ssl
import sys
from typing import Any

from attrib.settings import ConfigError, Settings

HELP = "serve the webhook ingress: POST/GET /webhooks/{source}, /healthz, /readyz, /metrics, /ops/rejections"
log = logging.getLogger("attrib.ingest.server")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="bind address (default ingest.host)")
    p.add_argument("--port", type=int, help="port (default ingest.port)")
    p.add_argument("--workers", type=int, help="processes sharing the port (default ingest.workers)")


def with_overrides(s: Settings, host: str | None = None, port: int | None = None,
                   workers: int | None = None) -> Settings:
    upd = {k: v for k, v in (("host", host), ("port", port), ("workers", workers)) if v is not None}
    return s.model_copy(update={"ingest": s.ingest.model_copy(update=upd)}) if upd else s


def main(args: argparse.Namespace, s: Settings) -> int:
    s = with_overrides(s, args.host, args.port, args.workers)
    from ingest.sources import compile_all

    try:
        compile_all(s)  # fail before binding anything
    except ConfigError as exc:
        print(f"attrib ingest: {exc}", file=sys.stderr)
        return 2
    if s.ingest.workers == 1:
        run_worker(s)
        return 0
    return _supervise(s)


# -- one process -------------------------------------------------------------------------------------------------
def ssl_context(s: Settings) -> ssl.SSLContext | None:
    if s.ingest.tls_cert is None or s.ingest.tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(s.ingest.tls_cert, s.ingest.tls_key)
    return ctx


async def start(s: Settings, app: Any = None, reuse_port: bool = True) -> Any:
    """Set up the app (producer started) and listen; returns the AppRunner (``await runner.cleanup()`` to stop)."""
    from aiohttp import web

    from ingest import arrivals
    from ingest.app import INGRESS, make_app
    from ingest.http import Runner

    app = app or make_app(s)
    ing = app[INGRESS]
    arrivals.install(app, s, ing.arrivals, ing.producer)  # heartbeats: before setup freezes the app's signals
    runner = Runner(app, header_timeout=s.ingest.header_timeout_s, access_log=None,
                    auto_decompress=False, keepalive_timeout=s.ingest.keepalive_timeout_s,
                    shutdown_timeout=s.ingest.shutdown_timeout_s, max_field_size=16384)
    await runner.setup()
    site = web.TCPSite(runner, s.ingest.host, s.ingest.port, reuse_port=reuse_port, ssl_context=ssl_context(s),
                       backlog=2048)
    await site.start()
    return runner


async def _serve(s: Settings) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = await start(s)
    # everything allocated so far lives as long as the process: keep it out of the collector's way (shorter pauses)
    gc.collect()
    gc.freeze()
    gc.set_threshold(5000, 20, 20)
    scheme = "https" if s.ingest.tls_cert else "http"
    log.info("ingress listening", extra={"fields": {"url": f"{scheme}://{s.ingest.host}:{s.ingest.port}",
                                                     "pid": os.getpid(), "sources": [x.name for x in s.sources]}})
    await stop.wait()
    log.info("ingress stopping: draining in-flight deliveries", extra={"fields": {"pid": os.getpid()}})
    await runner.cleanup()
    log.info("ingress stopped", extra={"fields": {"pid": os.getpid()}})


def run_worker(s: Settings) -> None:
    from attrib import logs

    logs.setup(s.log_level)
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but the ingress runs without it
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_serve(s))


# -- several processes -------------------------------------------------------------------------------------------
def _supervise(s: Settings) -> int:
    mp_dir = s.var_dir / "ingest-metrics"
    shutil.rmtree(mp_dir, ignore_errors=True)
    mp_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(mp_dir)  # inherited by the spawned workers before they import
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=run_worker, args=(s,), name=f"ingest-{i}") for i in range(s.ingest.workers)]
    for p in procs:
        p.start()

    def forward(signum: int, _frame: Any) -> None:
        for p in procs:
            if p.is_alive() and p.pid:
                os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    for p in procs:
        p.join()
        code = code or (p.exitcode or 0)
        from prometheus_client import multiprocess

        if p.pid:
            multiprocess.mark_process_dead(p.pid)
    return code
