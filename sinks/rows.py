"""Decoded Avro records → ClickHouse rows. Pure functions, one per table, plus each table's column list.

Rows are plain tuples in column order so the loader can transpose a batch into columns (column-oriented inserts
are the cheap path in clickhouse-connect). Timestamps stay aware datetimes (avro.decode gives them) and revenue stays
a Decimal; nested records (raw ref, touches) are flattened into prefixed columns.
"""

from __future__ import annotations

from typing import Any

from schemas.canonical import TOUCH_FIELDS

_EVENT_SCALARS = (
    "event_id", "version", "mmp", "source", "app_id", "event_name", "event_type", "event_time", "received_at",
    "user_key", "customer_user_id", "platform", "os_version", "app_version", "idfa", "idfv", "gaid", "android_id",
    "oaid", "media_source", "campaign", "campaign_id", "ad_set", "ad_set_id", "ad", "ad_id", "channel", "click_id",
    "deep_link", "is_organic", "touch_type", "touch_time", "revenue", "currency", "properties", "attribution_status",
)
EVENT_COLUMNS: tuple[str, ...] = (
    *_EVENT_SCALARS, "raw_topic", "raw_partition", "raw_offset",
    *(f"first_touch_{f}" for f in TOUCH_FIELDS), *(f"last_touch_{f}" for f in TOUCH_FIELDS), "emitted_at",
)
_NO_TOUCH = (None,) * len(TOUCH_FIELDS)


def _touch(t: dict[str, Any] | None) -> tuple[Any, ...]:
    return _NO_TOUCH if t is None else tuple(t.get(f) for f in TOUCH_FIELDS)


def _raw_ref(r: dict[str, Any] | None) -> tuple[str, int, int]:
    """Where the raw delivery sits in Kafka; ('', -1, -1) when the worker did not say (replays, synthetic events)."""
    return (r["topic"], r["partition"], r["offset"]) if r else ("", -1, -1)


def event_row(rec: dict[str, Any]) -> tuple[Any, ...]:
    """An EnrichedEvent → an ``events`` row. ``app_id`` is NOT NULL in the table: missing means ''."""
    base = [rec.get(c) for c in _EVENT_SCALARS]
    if base[4] is None:
        base[4] = ""
    return (*base, *_raw_ref(rec.get("raw")), *_touch(rec.get("first_touch")), *_touch(rec.get("last_touch")),
            rec.get("emitted_at") or rec["received_at"])


DEAD_LETTER_COLUMNS = ("dead_letter_id", "stage", "reason", "detail", "field", "source", "mmp", "delivery_id",
                       "raw_topic", "raw_partition", "raw_offset", "payload", "failed_at")


def dead_letter_row(rec: dict[str, Any]) -> tuple[Any, ...]:
    raw = rec.get("raw") or {}
    payload = rec.get("payload")
    return (rec["dead_letter_id"], rec["stage"], rec["reason"], rec["detail"], rec.get("field"), rec.get("source"),
            rec.get("mmp"), rec.get("delivery_id"), raw.get("topic"), raw.get("partition"), raw.get("offset"),
            payload, rec["failed_at"])


ALERT_COLUMNS = ("alert_id", "state", "direction", "severity", "scope", "app_id", "media_source", "event_type",
                 "observed", "expected", "bucket_start", "bucket_end", "created_at", "resolved_at", "p_value", "detail")


def alert_row(rec: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(rec.get(c) for c in ALERT_COLUMNS)


RAW_COLUMNS = ("delivery_id", "source", "mmp", "app_id", "method", "path", "query_string", "headers", "body",
               "remote_addr", "received_at", "user_key", "raw_topic", "raw_partition", "raw_offset")


def raw_row(rec: dict[str, Any], topic: str, partition: int, offset: int) -> tuple[Any, ...]:
    return (rec["delivery_id"], rec["source"], rec["mmp"], rec.get("app_id"), rec["method"], rec["path"],
            rec["query_string"], rec["headers"], rec["body"], rec["remote_addr"], rec["received_at"],
            rec["user_key"], topic, partition, offset)


# schema name (as avro.decode reports it) → (table, columns)
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "enriched_event": ("events", EVENT_COLUMNS),
    "dead_letter": ("dead_letters", DEAD_LETTER_COLUMNS),
    "alert": ("alerts", ALERT_COLUMNS),
    "raw_delivery": ("raw_deliveries", RAW_COLUMNS),
}


def to_row(name: str, rec: dict[str, Any], topic: str, partition: int, offset: int) -> tuple[Any, ...]:
    if name == "enriched_event":
        return event_row(rec)
    if name == "dead_letter":
        return dead_letter_row(rec)
    if name == "alert":
        return alert_row(rec)
    if name == "raw_delivery":
        return raw_row(rec, topic, partition, offset)
    raise ValueError(f"no table for {name} records")

TABLES_BY_NAME: dict[str, tuple[str, ...]] = {table: cols for table, cols in TABLES.values()}
