"""The last rejected requests (reason, source, address, size, time) for "why are Branch deliveries failing?".

Unverified requests are never stored in Kafka; this bounded in-memory list (per process) and the warning log line are
what an operator sees. Nothing here holds a body, a header value or a secret."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Rejection:
    at: float
    source: str
    status: int
    error: str
    reason: str
    client: str
    method: str
    size: int
    delivery_id: str = ""  # set when the delivery was kept on the dead-letter topic despite the error answer

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["at"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.at)) + f".{int(self.at * 1000) % 1000:03d}Z"
        return d


class Rejections:
    def __init__(self, keep: int) -> None:
        self._items: deque[Rejection] = deque(maxlen=keep)
        self.total = 0

    def add(self, r: Rejection) -> None:
        self._items.append(r)
        self.total += 1

    def recent(self, source: str | None = None, limit: int | None = None) -> list[Rejection]:
        """Newest first, optionally for one source."""
        out = [r for r in reversed(self._items) if source is None or r.source == source]
        return out[:limit] if limit else out
