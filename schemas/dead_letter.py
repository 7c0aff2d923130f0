"""The one dead-letter constructor every stage uses (Avro ``dead_letter`` record as a plain dict).

One id scheme: ``dead_letter_id`` is a UUIDv5 of the stage and an *anchor* that names the failed thing — its Kafka
position when it has one (``topic/partition/offset``), else the delivery id, else a digest of the payload. A message
processed again after a restart therefore yields the same id, and the warehouse keeps one row for it.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

# Fixed namespace so ids are stable across processes and versions.
NAMESPACE = uuid.UUID("6f1d3b4e-7c2a-5e8f-9a0b-1c2d3e4f5a6b")
DETAIL_MAX = 2000
STAGES = ("ingress", "normalize", "process", "sink", "route", "alerts")


def anchor_of(raw_ref: dict[str, Any] | None = None, delivery_id: str | None = None,
              payload: bytes | str | None = None) -> str:
    """What identifies the failed thing: its Kafka position, else its delivery id, else its content."""
    if raw_ref is not None:
        return f"{raw_ref['topic']}/{raw_ref['partition']}/{raw_ref['offset']}"
    if delivery_id:
        return f"delivery:{delivery_id}"
    data = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else (payload or b"")
    return "sha256:" + hashlib.sha256(data).hexdigest()


def dead_letter_id(stage: str, anchor: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{stage}|{anchor}"))


def dead_letter(*, stage: str, reason: str, detail: str, raw_ref: dict[str, Any] | None = None,
                delivery_id: str | None = None, payload: bytes | None = None, source: str | None = None,
                mmp: str | None = None, field: str | None = None, failed_at_ms: int | None = None,
                anchor: str | None = None) -> dict[str, Any]:
    """A dead-letter record. ``raw_ref`` is ``{"topic", "partition", "offset"}`` of the input when it came from Kafka;
    ``anchor`` overrides the id's anchor (e.g. a digest of a refused warehouse row)."""
    return {
        "dead_letter_id": dead_letter_id(stage, anchor or anchor_of(raw_ref, delivery_id, payload)),
        "stage": stage,
        "reason": reason,
        "detail": detail[:DETAIL_MAX],
        "field": field,
        "source": source,
        "mmp": mmp,
        "delivery_id": delivery_id,
        "raw": raw_ref,
        "payload": payload,
        "failed_at": int(time.time() * 1000) if failed_at_ms is None else failed_at_ms,
    }
