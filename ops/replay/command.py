"""`attrib replay`: re-process a time range of raw deliveries, or the open dead letters."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from attrib.settings import Settings

HELP = "re-process archived raw deliveries (--since/--until … --into) or open dead letters (--dead-letters)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", help="start of the range (ISO-8601, epoch ms, or an age: 2h, 30m, 7d)")
    p.add_argument("--until", default="now", help="end of the range, exclusive (default now)")
    p.add_argument("--source", help="only deliveries of this source")
    p.add_argument("--event-type", help="only events of this type (install, purchase, …)")
    p.add_argument("--into", help="topic:<new topic> | clickhouse:<new database> | live")
    p.add_argument("--dry-run", action="store_true", help="count what would be replayed, change nothing")
    p.add_argument("--restart", action="store_true", help="forget this replay's checkpoint and start over")
    p.add_argument("--max", type=int, help="stop after this many records (run the same command again to go on)")
    p.add_argument("--dead-letters", action="store_true", help="re-run the open dead letters instead")
    p.add_argument("--reason", help="with --dead-letters: only this reason")
    p.add_argument("--stage", help="with --dead-letters: only this stage (ingress, normalize, process, route)")


def main(args: argparse.Namespace, settings: Settings) -> int:
    from attrib.topics import unreachable
    from ops.replay.spec import RangeSpec, SpecError, Target, parse_time

    if args.dead_letters:
        if why := unreachable(settings):
            print(f"attrib replay: {why}", file=sys.stderr)
            return 2
        from ops.replay.dead import replay_dead_letters

        outcome = replay_dead_letters(settings, reason=args.reason, stage=args.stage, dry_run=args.dry_run)
        return 0 if not outcome.still_failing else 1
    if not args.since or (not args.into and not args.dry_run):
        print("attrib replay: --since and --into are required (or --dead-letters)", file=sys.stderr)
        return 2
    try:
        now = int(time.time() * 1000)
        spec = RangeSpec(parse_time(args.since, now), parse_time(args.until, now),
                         Target.parse(args.into or "live"), args.source, args.event_type, (args.since, args.until))
    except SpecError as exc:
        print(f"attrib replay: {exc}", file=sys.stderr)
        return 2
    if args.source and settings.source(args.source) is None:
        print(f"attrib replay: unknown source {args.source!r}", file=sys.stderr)
        return 2
    if why := unreachable(settings):
        print(f"attrib replay: {why}", file=sys.stderr)
        return 2
    if args.dry_run:
        from ops.replay.ranged import dry_run

        dry_run(settings, spec)
        return 0
    from ops.replay.ranged import RangeReplay, ReplayError

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    r = RangeReplay(settings, spec, restart=args.restart, max_records=args.max, stop=stop)
    log_file = _logs_to_file(r.path.with_suffix(".log"))
    print(f"replay {r.id} into {spec.target} (consumer group {r.group}, checkpoint {r.path}, logs {log_file})",
          file=sys.stderr)
    try:
        code = r.run()
    except ReplayError as exc:
        print(f"attrib replay: {exc}", file=sys.stderr)
        return 2
    if code == 0:
        print(f"replay {r.id} complete: " + ", ".join(f"{n:,} → {t}" for t, n in sorted(r.counts.items())))
    else:
        print(f"replay {r.id} stopped; run the same command again to resume", file=sys.stderr)
    return code


def _logs_to_file(path: Path) -> Path:
    """The progress bar owns stderr while a replay runs: the JSON logs (clients, the sink's loader) go to a file next
    to the checkpoint; only errors still reach stderr, on a line of their own."""
    from attrib.logs import JsonFormatter

    path.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(path)
    to_file.setFormatter(JsonFormatter())
    errors = logging.StreamHandler(sys.stderr)
    errors.setLevel(logging.ERROR)
    errors.setFormatter(_OwnLine())
    logging.getLogger().handlers[:] = [to_file, errors]
    return path


class _OwnLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        from attrib.logs import JsonFormatter

        return ("\r\033[K" if sys.stderr.isatty() else "") + JsonFormatter().format(record)
