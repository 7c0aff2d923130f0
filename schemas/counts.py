"""Counts records: the stream worker's per-bucket event counts for the alerts evaluator (the one-partition counts
topic, JSON), and how the evaluator applies them exactly once. Both stages use this module; neither imports the other.

One record per (raw partition, output batch)::

    {"p": raw partition, "last": highest raw offset the batch covers, "at": progress ms, "a0": its first record's,
     "g": [from, to] (the latest gap seen, if any),
     "c": [[series, bucket_start_ms, [raw offset, ...]], ...], "f": [[feed, source, mmp], ...]}

**Idempotent per source offset.** The worker commits raw offsets only after its outputs (counts records included)
are acknowledged, but the commit's offsets are taken before that flush and processing goes on meanwhile, so a
restarted worker resumes from an offset *inside* a range whose counts were already sent — a per-partition high-water
offset over whole records would either drop the new part or count the old part twice. So every counted event carries
the raw offset that emitted it (per entry, a list: one int per event, cheap next to the event itself) and the
evaluator keeps, per raw partition, the highest offset it applied (``last``): re-processed offsets are dropped one by
one, the rest counted. A re-processed message emits the same events from the same offset (streams/state.py re-emits
what it emitted the first time), so counts match ``events FINAL``: each event counts once, at its first version
(corrections and the re-emits of corrections have version > 1 and are not counted again).

**Progress** (``at``): the receipt time (``received_at``) of the deliveries, or the wall time of the worker's tick
records, the partition has been processed up to. The evaluator closes a bucket only once every raw partition's
progress has passed the bucket's end plus the lateness: a pipeline that is catching up is behind, not silent.
**Gaps** (``g``): two consecutive raw records of a partition more than ``gap_ms`` apart (its receipt/tick times) mean
the partition holds no record at all in between — no delivery received, no worker tick produced: the pipeline was
down. ``a0`` is the batch's first record's time, for the evaluator to see a gap between batches too. A bucket inside
every raw partition's gap is not judged as silence (alerts/app.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

import orjson

SEP = "\x1f"  # series key: app_id SEP media_source SEP event_type (alerts.detector.SeriesKey.encode)
NO_SOURCE = "(none)"
KEY = b"c"  # every counts record and tick is keyed alike: one partition, order is the topic's


def gap_ms(tick_interval_s: float) -> int:
    """No record at all in a partition for longer than this — a minute, and ten worker ticks — is a gap."""
    return max(60_000, int(10 * tick_interval_s * 1000))


def series(rec: dict[str, Any]) -> str:
    return SEP.join((rec.get("app_id") or "", rec.get("media_source") or NO_SOURCE, rec["event_type"]))


def feed(key: str) -> str:
    """(app, media source) of a series key: the feed whose ingress sources are remembered."""
    return key.rsplit(SEP, 1)[0]


class _Part:
    __slots__ = ("a0", "at", "c", "f", "g", "last")

    def __init__(self) -> None:
        self.last = -1
        self.at = 0
        self.a0 = 0
        self.g: list[int] | None = None
        self.c: dict[tuple[str, int], list[int]] = {}
        self.f: set[tuple[str, str, str]] = set()


class Tally:
    """Worker side: what has been processed since the last ``drain``, per raw partition."""

    def __init__(self, bucket_ms: int, gap_ms: int = 60_000) -> None:
        self.bucket_ms, self.gap_ms = bucket_ms, gap_ms
        self.parts: dict[int, _Part] = {}
        self.prev: dict[int, int] = {}  # partition -> time of its last record processed (across drains)
        self.events = 0  # counted since the last drain: records stay far below the producer's batch size

    def seen(self, partition: int, offset: int) -> None:
        """A raw record is being processed (delivery, tick or dead letter), before its events: the batch covers its
        offset."""
        p = self.parts.get(partition)
        if p is None:
            p = self.parts[partition] = _Part()
        if offset <= p.last:  # the stream went back (a seek after recovery): those offsets will be counted again
            p.c = {ck: kept for ck, offs in p.c.items() if (kept := [o for o in offs if o < offset])}
        p.last = offset

    def progress(self, partition: int, at_ms: int) -> None:
        """The partition is processed up to receipt time ``at_ms`` (a delivery's ``received_at``, a tick's time)."""
        p = self.parts.get(partition)
        if p is None:
            p = self.parts[partition] = _Part()
        if at_ms > p.at:
            p.at = at_ms
        if not p.a0:
            p.a0 = at_ms
        prev = self.prev.get(partition)
        if prev is not None and at_ms - prev > self.gap_ms:
            p.g = [prev, at_ms]
        if prev is None or at_ms > prev:
            self.prev[partition] = at_ms

    def event(self, partition: int, offset: int, rec: dict[str, Any]) -> None:
        """An enriched event was emitted by the raw record at ``offset`` (times as int ms). Counted at its first
        version only: a correction replaces an event the warehouse already has."""
        if rec.get("version", 1) != 1:
            return
        p = self.parts.get(partition)
        if p is None:  # (``seen`` comes first for every raw record; this keeps the tally usable on its own)
            p = self.parts[partition] = _Part()
        if offset > p.last:
            p.last = offset
        t = rec["event_time"]
        k = series(rec)
        ck = (k, t - t % self.bucket_ms)
        self.events += 1
        offs = p.c.get(ck)
        if offs is None:
            p.c[ck] = [offset]
        else:
            offs.append(offset)
        source = rec.get("source")
        if source:
            p.f.add((feed(k), source, rec.get("mmp") or ""))

    def __bool__(self) -> bool:
        return bool(self.parts)

    def drain(self) -> list[bytes]:
        """One record per raw partition touched since the last drain (JSON bytes), and start over."""
        out = [orjson.dumps({"p": n, "last": p.last, "at": p.at, "a0": p.a0, **({"g": p.g} if p.g else {}),
                             "c": [[k, b, o] for (k, b), o in p.c.items()],
                             "f": sorted(p.f)}) for n, p in self.parts.items()]
        self.parts = {}
        self.events = 0
        return out


def fresh(rec: dict[str, Any], applied: int) -> Iterable[tuple[str, int, int]]:
    """Evaluator side: (series, bucket, n) of a counts record not applied yet, given the highest raw offset of its
    partition already applied (-1: none)."""
    for k, b, offs in rec["c"]:
        if not offs or offs[-1] <= applied:
            continue
        n = len(offs) if offs[0] > applied else len(offs) - bisect.bisect_right(offs, applied)
        yield k, b, n
