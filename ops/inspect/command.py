"""`attrib inspect`: the live delivery inspector web page (operator port, token, off unless enabled)."""

from __future__ import annotations

import argparse
import asyncio
import signal

from attrib.settings import Settings

HELP = "serve the live delivery inspector page (needs inspector.enabled and inspector.token)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="override inspector.port")


def main(args: argparse.Namespace, settings: Settings) -> int:
    ins = settings.inspector
    if not ins.enabled:
        print("attrib inspect: the inspector is disabled; set ATTRIB_INSPECTOR__ENABLED=true (and a token)")
        return 2
    if ins.token is None or len(ins.token.get_secret_value()) < 16:
        print("attrib inspect: ATTRIB_INSPECTOR__TOKEN must be set to at least 16 characters")
        return 2
    return asyncio.run(_run(settings, args.port))


async def _run(settings: Settings, port: int | None) -> int:
    from ops.inspect.server import serve

    stop, started = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(serve(settings, stop, port=port, started=started))
    await started.wait()
    print(f"inspector on http://{settings.inspector.host}:{port or settings.inspector.port}/?token=…", flush=True)
    await task
    return 0
