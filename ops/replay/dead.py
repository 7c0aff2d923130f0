"""`attrib replay --dead-letters`: re-run the open dead letters after a fix; the ones that now succeed are recorded
in ``dead_letter_resolutions`` and so leave the open set.

* Deliveries (stages ingress/normalize/process; the payload is the RawDelivery) are normalized again with the
  current code and settings; when that succeeds the delivery is appended again to the raw topic, unchanged, for the
  live worker (its dedupe makes a repeat harmless). Still failing → it stays open, with the new reason reported.
* Outbound deliveries (stage route; the payload is the EnrichedEvent) are sent again to their destination, with
  that destination's retry policy.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from attrib import kafka
from attrib.settings import Settings
from schemas import wire
from schemas.avro import AvroError

OPEN_SQL = """
SELECT dead_letter_id, stage, reason, detail, source, hex(ifNull(payload, ''))
FROM {db}.dead_letters FINAL
WHERE dead_letter_id NOT IN (SELECT dead_letter_id FROM {db}.dead_letter_resolutions)
  {where}
ORDER BY failed_at
"""


@dataclass
class Outcome:
    resolved: Counter[str] = field(default_factory=Counter)
    still_failing: Counter[str] = field(default_factory=Counter)  # "old reason -> new reason"
    skipped: Counter[str] = field(default_factory=Counter)


def open_dead_letters(client: Any, database: str, reason: str | None = None,
                      stage: str | None = None) -> list[dict[str, Any]]:
    where, params = "", {}
    if reason:
        where += " AND reason = {reason:String}"
        params["reason"] = reason
    if stage:
        where += " AND stage = {stage:String}"
        params["stage"] = stage
    rows = client.query(OPEN_SQL.format(where=where, db=database), parameters=params).result_rows
    return [{"dead_letter_id": r[0], "stage": r[1], "reason": r[2], "detail": r[3], "source": r[4],
             "payload": bytes.fromhex(r[5]) if r[5] else b""} for r in rows]


def retry_delivery(s: Settings, dl: dict[str, Any]) -> tuple[bool, str, dict[str, Any] | None]:
    """(now succeeds, reason if not, the raw delivery)."""
    from schemas.errors import NormalizeError
    from schemas.normalize import normalize

    try:
        _, raw = wire.cached(s).decode(dl["payload"] or b"", expect="raw_delivery")
    except AvroError:
        return False, "no_replayable_payload", None
    src = s.source(raw["source"])
    if src is None:
        return False, "unknown_source", raw
    try:
        events = normalize(src, raw)
    except NormalizeError as exc:
        return False, exc.reason, raw
    return (True, "", raw) if events else (False, "no_events", raw)


async def retry_routes(s: Settings, dls: list[dict[str, Any]]) -> list[tuple[bool, str]]:
    """Send route dead letters again, each destination with its own policy and concurrency, all in one loop."""
    from sinks.route.metrics import RouteMetrics
    from sinks.route.presets.delivery import make_destination
    from sinks.route.sender import Destination, Job
    from sinks.route.view import build

    metrics = RouteMetrics()
    dests: dict[str, Destination] = {}
    for cfg in s.route.destinations:
        dests[cfg.name] = make_destination(cfg, metrics, lambda job: None, _never)
    for d in dests.values():
        await d.start()
    gates = {name: asyncio.Semaphore(d.cfg.concurrency) for name, d in dests.items()}

    async def one(dl: dict[str, Any]) -> tuple[bool, str]:
        try:
            detail = json.loads(dl["detail"])
            _, rec = wire.cached(s).decode(dl["payload"] or b"", expect="enriched_event")
        except (ValueError, AvroError):  # not JSON, not an enriched event
            return False, "no_replayable_payload"
        name = detail.get("destination") if isinstance(detail, dict) else None
        dest = dests.get(name) if isinstance(name, str) else None
        if name is None or dest is None:
            return False, "unknown_destination"
        async with gates[name]:
            failure = await dest.deliver(Job(rec, build(rec), -1, -1, dl["payload"]))
        return (True, "") if failure is None else (False, failure.reason)

    try:
        return list(await asyncio.gather(*(one(dl) for dl in dls)))
    finally:
        for d in dests.values():
            await d.stop()


async def _never(*_: Any) -> None:  # deliver() returns failures instead of calling on_dead
    return None


def replay_dead_letters(s: Settings, *, reason: str | None = None, stage: str | None = None, dry_run: bool = False,
                        out: TextIO = sys.stdout, client: Any = None) -> Outcome:
    from ops.warehouse import open_for_writes

    own = client is None
    client = client or open_for_writes(s)  # held by a running sink: one line naming it
    result = Outcome()
    producer = kafka.producer(s, "replay", {"enable.idempotence": True})
    resolutions: list[tuple[str, int, str, str]] = []
    try:
        todo = open_dead_letters(client, s.clickhouse.database, reason, stage)
        print(f"{len(todo):,} open dead letters" + (f" with reason {reason}" if reason else ""), file=out)
        routes = [dl for dl in todo if dl["stage"] == "route"]
        results = asyncio.run(retry_routes(s, routes)) if routes and not dry_run else []
        routed = dict(zip((dl["dead_letter_id"] for dl in routes), results, strict=False))  # dry run: none
        for dl in todo:
            key = f"{dl['stage']}/{dl['reason']}"
            if dl["stage"] == "route":
                ok, why = routed.get(dl["dead_letter_id"], (False, "dry_run"))
                if ok:
                    resolutions.append((dl["dead_letter_id"], int(time.time() * 1000), "redelivered", ""))
            else:
                ok, why, raw = retry_delivery(s, dl)
                if ok and not dry_run and raw is not None:
                    producer.produce(s.topics.raw, dl["payload"], key=raw["user_key"].encode())
                    resolutions.append((dl["dead_letter_id"], int(time.time() * 1000), "reprocessed",
                                        json.dumps({"delivery_id": raw["delivery_id"]})))
            if ok:
                result.resolved[key] += 1
            elif why == "dry_run":
                result.skipped[key] += 1
            else:
                result.still_failing[f"{key} -> {why}"] += 1
        if producer.flush(60):
            raise RuntimeError("re-appended deliveries not acknowledged by Kafka; nothing marked resolved")
        if resolutions and not dry_run:
            client.insert("dead_letter_resolutions", resolutions, database=s.clickhouse.database,
                          column_names=["dead_letter_id", "resolved_at", "resolution", "detail"])
    finally:
        if own:
            client.close()
    verb = "would resolve" if dry_run else "resolved"
    for k, n in sorted(result.resolved.items()):
        print(f"  {verb:<14} {k:<40} {n:>8,}", file=out)
    for k, n in sorted(result.still_failing.items()):
        print(f"  still failing  {k:<40} {n:>8,}", file=out)
    for k, n in sorted(result.skipped.items()):
        print(f"  not tried      {k:<40} {n:>8,} (outbound deliveries are not sent in a dry run)", file=out)
    return result
