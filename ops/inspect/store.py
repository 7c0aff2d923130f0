"""What the inspector shows, kept in memory: the latest deliveries (accepted, rejected, dead-lettered), their
outcome once the worker has processed them, per-source per-minute counts for the last hour, and open alerts."""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field
from typing import Any

RawRef = tuple[str, int, int]  # topic, partition, offset
MINUTE_MS = 60_000
HOUR_MINUTES = 60


@dataclass
class Row:
    at: int  # ms
    source: str
    method: str
    status: str  # accepted | rejected | dead_letter
    http_status: int
    verification: str  # passed | failed | none
    reason: str
    size: int
    user_key: str = ""
    event_type: str = ""
    outcome: str = ""  # event | dead letter reason | ""
    delivery_id: str = ""
    payload: str = ""
    seq: int = 0  # bumped whenever the row changes (clients poll "after seq")
    id: int = 0  # stable

    def public(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Store:
    keep: int = 2000
    rows: deque[Row] = field(default_factory=deque)
    by_ref: OrderedDict[RawRef, Row] = field(default_factory=OrderedDict)
    by_delivery: dict[str, Row] = field(default_factory=dict)
    counts: dict[tuple[str, int], int] = field(default_factory=dict)  # (source, minute) -> deliveries
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # alert_id -> latest state (open only)
    _seq: itertools.count = field(default_factory=lambda: itertools.count(1))
    _early: OrderedDict[RawRef, tuple[str, str]] = field(default_factory=OrderedDict)  # outcome seen before its row

    def add(self, row: Row, ref: RawRef | None = None) -> Row:
        """A new row; or, for a delivery already shown, one row: a 400 the ingress kept on the dead-letter topic
        arrives both as a rejection (the ingress's feed) and as a dead letter (Kafka), in either order."""
        seen = self.by_delivery.get(row.delivery_id) if row.delivery_id else None
        if seen is not None:
            if seen.status != "dead_letter" and row.status == "dead_letter":  # the dead letter has the payload
                row.id, row.seq = seen.id, next(self._seq)
                self.rows[self.rows.index(seen)] = row
                self.by_delivery[row.delivery_id] = row
                return row
            return seen
        row.seq = row.id = next(self._seq)
        self.rows.append(row)
        minute = row.at // MINUTE_MS
        self.counts[(row.source, minute)] = self.counts.get((row.source, minute), 0) + 1
        if ref is not None:
            self.by_ref[ref] = row
            if ref in self._early:
                row.event_type, row.outcome = self._early.pop(ref)
        if row.delivery_id:
            self.by_delivery[row.delivery_id] = row
        while len(self.rows) > self.keep:
            old = self.rows.popleft()
            self.by_delivery.pop(old.delivery_id, None)
        while len(self.by_ref) > self.keep:
            self.by_ref.popitem(last=False)
        return row

    def outcome(self, ref: RawRef | None, delivery_id: str | None, event_type: str, outcome: str) -> None:
        """The worker's verdict on a delivery: an event type, or a dead-letter reason."""
        row = (self.by_ref.get(ref) if ref else None) or (self.by_delivery.get(delivery_id) if delivery_id else None)
        if row is None:
            if ref is not None:
                self._early[ref] = (event_type, outcome)
                while len(self._early) > self.keep:
                    self._early.popitem(last=False)
            return
        if event_type and row.event_type and event_type not in row.event_type.split(","):
            event_type = f"{row.event_type},{event_type}"  # one delivery can carry several events
        row.event_type = event_type or row.event_type
        row.outcome = outcome or row.outcome
        row.seq = next(self._seq)  # changed rows are sent again

    def alert(self, a: dict[str, Any]) -> None:
        if a.get("state") == "resolved" or a.get("resolved_at"):
            self.alerts.pop(a["alert_id"], None)
        else:
            self.alerts[a["alert_id"]] = a

    def since(self, seq: int, source: str | None = None, status: str | None = None,
              limit: int = 500) -> list[dict[str, Any]]:
        out = [r.public() for r in self.rows if r.seq > seq and (not source or r.source == source)
               and (not status or r.status == status)]
        return out[-limit:]

    def rates(self, now_ms: int) -> dict[str, list[int]]:
        """Per source: deliveries in each of the last 60 minutes, oldest first."""
        end = now_ms // MINUTE_MS
        start = end - HOUR_MINUTES + 1
        for key in [k for k in self.counts if k[1] < start]:
            del self.counts[key]
        out: dict[str, list[int]] = {}
        for (src, minute), n in self.counts.items():
            if start <= minute <= end:
                out.setdefault(src, [0] * HOUR_MINUTES)[minute - start] += n
        return dict(sorted(out.items()))

    def sources(self) -> list[str]:
        return sorted({s for s, _ in self.counts} | {r.source for r in self.rows})
