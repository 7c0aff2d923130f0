"""`attrib route`: the outbound routing consumer."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from attrib.settings import Settings
from sinks.route import view as view_mod

HELP = "fan enriched events out to the configured HTTP destinations (retries, circuit breaker, dead letters)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="validate destinations and templates, then exit")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what each destination would send for a sample event (no network), then exit")
    parser.add_argument("--event", type=Path, default=None,
                        help="with --dry-run: a JSON file of an enriched event instead of the built-in sample")


def main(args: argparse.Namespace, settings: Settings) -> int:
    from sinks.route import template
    from sinks.route.filters import Filter

    if not settings.route.destinations:
        print("attrib route: no destinations configured (route.destinations / ATTRIB_ROUTE__DESTINATIONS)")
        return 2
    if args.dry_run:
        from sinks.route.presets.dryrun import load_events, render

        records = load_events(args.event)
        print("\n\n".join(render(d, r) for r in records for d in settings.route.destinations))
        return 0
    shape = _shape()
    for d in settings.route.destinations:
        try:
            Filter.of(d.filters, d.events)
            paths = template.check(d.url) + (template.check(d.body) if d.body else [])
        except ValueError as exc:
            print(f"attrib route: destination {d.name}: {exc}")
            return 2
        bad = [p for p in [*paths, *d.filters] if view_mod.unknown(p, shape)]
        if bad:
            print(f"attrib route: destination {d.name}: unknown key path(s) {', '.join(map(repr, bad))}: use event.*, "
                  f"user.*, attribution.*, properties.* or an EnrichedEvent field (README \"Filters\")")
            return 2
        if d.kind != "http":
            from sinks.route.presets import PRESETS

            preset = PRESETS[d.kind]
            problems = preset.problems(d.preset)
            if problems:
                print(f"attrib route: destination {d.name}: " + "; ".join(problems))
                return 2
            if args.check:
                print(f"{d.name}: {d.kind} POST {preset.url(d.preset).split('?')[0]} "
                      f"batch<={preset.batch_cap(d.preset)} filters={list(d.filters)} events={d.events or 'all'}")
                continue
        if args.check:
            print(f"{d.name}: {d.method} {d.url.split('?')[0]} tags={paths} filters={list(d.filters)} "
                  f"events={d.events or 'all'} first_time_per_user={d.first_time_per_user}")
    if args.check:
        return 0
    return asyncio.run(_run(settings))


def _shape() -> dict[str, object]:
    """The view of an enriched event with every field present (both touches), for checking key paths."""
    from sinks.route.presets.dryrun import SAMPLE, load_events

    full = {**SAMPLE, "last_touch": SAMPLE["first_touch"], "properties": "{}"}
    return view_mod.build({**load_events(None)[1], **{k: v for k, v in full.items() if k.endswith("_touch")}})


async def _run(settings: Settings) -> int:
    from sinks.route.service import Router

    rs = settings.route
    print(f"attrib route: {settings.topics.events} → {len(rs.destinations)} destination(s) "
          f"({', '.join(d.name for d in rs.destinations)}); group {rs.group_id}, a new group starts at {rs.start}"
          + (f"; metrics http://127.0.0.1:{rs.metrics_port}/metrics" if rs.metrics_port else "")
          + "; Ctrl-C stops", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await Router(settings).run(stop)
    return 0
