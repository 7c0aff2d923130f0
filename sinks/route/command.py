"""`attrib route`: the outbound routing consumer."""

from __future__ import annotations

import argparse
import asyncio
import signal

from attrib.settings import Settings

HELP = "fan enriched events out to the configured HTTP destinations (retries, circuit breaker, dead letters)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="validate destinations and templates, then exit")


def main(args: argparse.Namespace, settings: Settings) -> int:
    from sinks.route import template
    from sinks.route.filters import Filter

    if not settings.route.destinations:
        print("attrib route: no destinations configured (route.destinations / ATTRIB_ROUTE__DESTINATIONS)")
        return 2
    for d in settings.route.destinations:
        try:
            Filter.of(d.filters, d.events)
            paths = template.check(d.url) + (template.check(d.body) if d.body else [])
        except ValueError as exc:
            print(f"attrib route: destination {d.name}: {exc}")
            return 2
        if args.check:
            print(f"{d.name}: {d.method} {d.url.split('?')[0]} tags={paths} filters={list(d.filters)} "
                  f"events={d.events or 'all'} first_time_per_user={d.first_time_per_user}")
    if args.check:
        return 0
    return asyncio.run(_run(settings))


async def _run(settings: Settings) -> int:
    from sinks.route.service import Router

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await Router(settings).run(stop)
    return 0
