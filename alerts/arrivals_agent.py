"""The arrivals agent of `attrib alerts`: ingress heartbeats (topics.arrivals, ingest/arrivals.py) through the silence
judge (alerts/arrivals.py) to drop alerts. Its table is written only here, once per heartbeat (the judge's small
state with the offset it covers, one record) and once per source per hour (that source's history). The topic has one
partition, so one alerts worker judges every source; it is the worker that owns the counts partition too (Faust assigns
the one-partition topics of an app together), so ``evaluate`` can read the incidents to group count-based drops.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import faust

from alerts.arrivals import Beat, History, Rules, World, explains, open_incident, step
from attrib.settings import AlertArrivalsSettings, Settings

log = logging.getLogger("attrib.alerts.arrivals")
TABLE = "alert-arrivals"
WORLD = "world"
SendAlert = Callable[[dict[str, Any]], Awaitable[None]]
DeadLetter = Callable[[str, BaseException, bytes | None, dict[str, Any]], Awaitable[None]]


def rules_of(a: AlertArrivalsSettings) -> Rules:
    return Rules(false_alarms_per_week=a.false_alarms_per_week, min_days=a.min_days, history_days=a.history_days)


def _hist(v: Mapping[str, Any] | None) -> History:
    return {int(h): (int(x[0]), int(x[1])) for h, x in (v or {}).items()}


def install(app: faust.App, s: Settings, table: Any, send_alert: SendAlert, dead_letter: DeadLetter) -> None:
    """Add the agent on topics.arrivals to ``app``; ``table`` is its (one-partition) table."""
    rules = rules_of(s.alerts.arrivals)
    topic = app.topic(s.topics.arrivals, key_serializer="raw", value_serializer="raw")

    async def apply(value: bytes, offset: int) -> None:
        state = table.get(WORLD) or {}
        if offset <= state.get("offset", -1):
            return  # applied before a crash or a rebalance: a replay must not count deliveries twice
        beat = Beat.of(json.loads(value))
        world = World.from_dict(state)
        hist = {n: _hist(table.get(f"hist:{n}")) for n in {*world.sources, *beat.sources}}
        st = step(world, hist, beat, rules)
        for a in st.alerts:  # sent before the state moves on: a crash in between re-sends (same alert_id), never
            # loses an alert
            d = json.loads(a["detail"])
            log.info("arrivals alert", extra={"fields": {"alert_id": a["alert_id"], "state": a["state"],
                                                         "source": d["source"], "silent_s": d["silent_s"]}})
            await send_alert(a)
        for name, h in st.history.items():
            if h:
                table[f"hist:{name}"] = {str(k): list(v) for k, v in h.items()}
            elif f"hist:{name}" in table:
                del table[f"hist:{name}"]
        table[WORLD] = {**st.world.to_dict(), "offset": offset}

    @app.agent(topic, concurrency=1)
    async def judge_arrivals(stream: faust.StreamT) -> None:
        async for ev in stream.events():
            m = ev.message
            ref = {"topic": m.topic, "partition": m.partition, "offset": m.offset}
            try:
                await apply(ev.value, m.offset)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:  # not a heartbeat (json's errors are
                # ValueErrors): kept with its reason, the agent goes on
                await dead_letter("bad_heartbeat", exc, ev.value if isinstance(ev.value, bytes) else None, ref)
            except Exception as exc:  # noqa: BLE001 - a judge bug: dead-lettered with its position, not acked silently
                await dead_letter("arrivals_judge_failed", exc, None, ref)


def spans_of(table: Any) -> dict[str, list[tuple[int, int | None]]]:
    w = table.get(WORLD) or {}
    return {n: [(int(a), None if b is None else int(b)) for a, b in src.get("spans") or ()]
            for n, src in (w.get("sources") or {}).items()}


def joins_arrivals(r: Mapping[str, Any], feeds: list[list[str]] | None, table: Any, meta: Any) -> bool:
    """One stop, one page: True when the count-based drop ``r`` is a stop the arrivals judge already paged, so it is
    not sent (nor its repeats while that incident is open, nor its resolve). Called from ``evaluate``, which owns
    ``meta`` (where the grouped alert ids are kept)."""
    if r["direction"] != "drop":
        return False
    key = f"arrivals-grouped:{r['alert_id']}"
    if r["state"] == "resolved":
        if key in meta:
            del meta[key]
            return True
        return False
    spans = spans_of(table)
    if key in meta:
        if open_incident(spans, meta[key]):
            return True  # a repeat while the stop goes on
        del meta[key]  # the drop outlived the stop (they came back, but fewer): its own news now, resolve included
        return False
    if feeds and explains(spans, feeds, int(r["bucket_start"]), int(r["bucket_end"])):
        meta[key] = feeds
        log.info("count-based drop grouped under its arrivals incident", extra={"fields": {
            "alert_id": r["alert_id"], "feeds": feeds}})
        return True
    return False
