"""`attrib dashboard`: charts over the warehouse for analysts and operators (loopback by default, token required)."""

from __future__ import annotations

import argparse
import asyncio
import signal

from attrib.settings import Settings

HELP = "serve the analyst/ops dashboard page (needs dashboard.token; open http://host:port/#token=…)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="override dashboard.port")
    parser.add_argument("--days", type=int, default=30, help="days of data shown (default 30)")


def main(args: argparse.Namespace, settings: Settings) -> int:
    d = settings.dashboard
    token = d.token.get_secret_value() if d.token else ""
    if len(token) < 16:
        print("attrib dashboard: ATTRIB_DASHBOARD__TOKEN must be set to at least 16 characters")
        return 2
    return asyncio.run(_run(settings, token, args.port or d.port, args.days))


async def _run(settings: Settings, token: str, port: int, days: int) -> int:
    from ops.dashboard.server import make_app, serve
    from ops.sql import query_rows

    stop, started = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # query_rows asks the running sink's loopback port in embedded mode, else opens the warehouse itself
    app = make_app(token, lambda sql: query_rows(settings, sql), days)
    task = asyncio.create_task(serve(app, settings.dashboard.host, port, stop, started))
    await started.wait()
    print(f"dashboard on http://{settings.dashboard.host}:{port}/#token=… (the token stays in the URL fragment)",
          flush=True)
    await task
    return 0
