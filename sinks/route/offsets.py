"""Which offsets may be committed: a record is finished when every destination it matched is done with it
(delivered, skipped or dead-lettered); a partition commits up to its first unfinished record."""

from __future__ import annotations

import threading
from collections import OrderedDict


class OffsetTracker:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # rebalance callbacks run on the consumer thread
        self._pending: dict[int, OrderedDict[int, int]] = {}  # partition -> offset -> destinations left
        self._next: dict[int, int] = {}  # partition -> next offset to commit (exclusive end of finished run)
        self._committed: dict[int, int] = {}
        self._gen: dict[int, int] = {}  # bumped when a partition is revoked: late completions are then ignored

    def add(self, partition: int, offset: int, waiting: int) -> int:
        """Track a record; returns the generation to pass back to :meth:`done`."""
        with self._lock:
            q = self._pending.setdefault(partition, OrderedDict())
            q[offset] = waiting
            self._advance(partition)
            return self._gen.get(partition, 0)

    def done(self, partition: int, offset: int, gen: int = 0) -> None:
        with self._lock:
            q = self._pending.get(partition)
            if q is None or offset not in q or gen != self._gen.get(partition, 0):
                return  # partition revoked meanwhile (maybe re-assigned: that record is being routed again)
            q[offset] -= 1
            self._advance(partition)

    def _advance(self, partition: int) -> None:
        q = self._pending[partition]
        while q:
            off, left = next(iter(q.items()))
            if left > 0:
                break
            q.popitem(last=False)
            self._next[partition] = off + 1

    def committable(self) -> dict[int, int]:
        """partition -> offset to commit, for partitions that advanced since the last call."""
        with self._lock:
            out = {p: o for p, o in self._next.items() if self._committed.get(p) != o}
            self._committed.update(out)
            return out

    def forget(self, partitions: list[int]) -> None:
        with self._lock:
            for p in partitions:
                self._gen[p] = self._gen.get(p, 0) + 1
                self._pending.pop(p, None)
                self._next.pop(p, None)
                self._committed.pop(p, None)

    def in_flight(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._pending.values())
