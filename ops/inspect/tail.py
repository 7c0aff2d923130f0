"""`attrib tail`: the inspector's stream in the terminal, one line per delivery (redacted like the page)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from typing import TextIO

from attrib.settings import Settings
from ops.inspect.store import Row

HELP = "follow deliveries live in the terminal (accepted from Kafka; --rejected from the ingress's rejection feed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", help="only this source")
    parser.add_argument("--rejected", action="store_true", help="rejected requests instead of accepted deliveries")
    parser.add_argument("--since", type=float, default=0.0, metavar="MINUTES", help="start this many minutes back")
    parser.add_argument("--payload", action="store_true", help="also print the (redacted) payload")


def line(row: Row, payload: bool = False) -> str:
    ts = time.strftime("%H:%M:%S", time.gmtime(row.at / 1000)) + f".{row.at % 1000:03d}"
    out = (f"{ts} {row.source:<16} {row.method:<4} {row.status:<11} {row.http_status:<3} "
           f"{row.verification:<6} {row.reason:<24} {row.size:>7}B {row.user_key or '-':<18} "
           f"{row.event_type or '-'} {row.outcome}").rstrip()
    if payload and row.payload:
        out += "\n    " + row.payload.replace("\n", "\n    ")
    return out


def main(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    return asyncio.run(_run(args, settings, out))


async def _run(args: argparse.Namespace, s: Settings, out: TextIO) -> int:
    from ops.inspect.feed import Item, KafkaFeed, RejectionPoller
    from ops.inspect.server import rejections_url

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def show(item: Item) -> None:
        if item[0] != "row":
            return  # outcomes arrive later than the line was printed; the page shows them
        row: Row = item[1]
        if args.source and row.source != args.source:
            return
        print(line(row, args.payload), file=out, flush=True)

    if args.rejected:
        poller = RejectionPoller(rejections_url(s), show, source=args.source)
        poller.start()
        await stop.wait()
        await poller.stop()
        return 0
    from attrib.topics import unreachable

    why = await loop.run_in_executor(None, unreachable, s)
    if why:
        print(f"attrib tail: {why}", file=sys.stderr)
        return 2
    since = int((time.time() - args.since * 60) * 1000)
    feed = KafkaFeed(s, lambda item: loop.call_soon_threadsafe(show, item), since, topics=[s.topics.raw,
                                                                                          s.topics.dead_letters])
    feed.start()
    try:
        await stop.wait()
    finally:
        await loop.run_in_executor(None, feed.stop)
    return 0
