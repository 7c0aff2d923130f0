"""The enriched event as plain JSON data and as the key-path view filters and templates read.

Paths follow Branch's webhook model: ``event.name``, ``attribution.campaign``, ``properties.city``, ``user.platform`` …
Every field of the Avro record is also reachable under its own name (``campaign``, ``first_touch.media_source``).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING", "__bool__": lambda self: False})()

_TOUCH = ("media_source", "campaign", "campaign_id", "ad_set", "ad_set_id", "ad", "ad_id", "channel", "click_id",
          "touch_type", "touch_time", "is_organic")
_USER = ("customer_user_id", "platform", "os_version", "app_version", "idfa", "idfv", "gaid", "android_id", "oaid")


def plain(value: Any) -> Any:
    """JSON-able copy: datetimes → ISO-8601 UTC with milliseconds, Decimal → exact string, bytes → text."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def decimal_text(d: Decimal) -> str:
    """Exact, fixed-point, no trailing zeros: Decimal('12.500000000') → '12.5'."""
    t = format(d.normalize(), "f")
    return t if t not in ("-0",) else "0"


def event_json(record: dict[str, Any]) -> dict[str, Any]:
    """The body POSTed for a destination without a body template: the record with ``properties`` as an object."""
    out = plain(record)
    out["properties"] = _props(record.get("properties"))
    return out


def _props(text: Any) -> Any:
    if isinstance(text, str):
        try:
            return json.loads(text)
        except ValueError:
            return {}
    return text if isinstance(text, dict) else {}


def build(record: dict[str, Any]) -> dict[str, Any]:
    """Key-path view of a decoded EnrichedEvent record (plain values)."""
    v = event_json(record)
    last, first = v.get("last_touch") or {}, v.get("first_touch") or {}
    # The event's own attribution first; an in-app event inherits the user's latest, then first, touch.
    attribution = {k: next((t[k] for t in (v, last, first) if t.get(k) is not None), None) for k in _TOUCH}
    attribution["deep_link"] = v.get("deep_link")
    attribution["status"] = v.get("attribution_status")
    v["attribution"] = attribution
    v["event"] = {"id": v.get("event_id"), "name": v.get("event_name"), "type": v.get("event_type"),
                  "time": v.get("event_time"), "received_at": v.get("received_at"), "revenue": v.get("revenue"),
                  "currency": v.get("currency"), "source": v.get("source"), "mmp": v.get("mmp"),
                  "app_id": v.get("app_id")}
    v["user"] = {"key": v.get("user_key"), **{k: v.get(k) for k in _USER}}
    return v


def resolve(view: dict[str, Any], path: str) -> Any:
    """The value at a dotted path, or MISSING when any step is absent or null. List steps take an index."""
    cur: Any = view
    for step in path.split("."):
        if isinstance(cur, dict) and step in cur:
            cur = cur[step]
        elif isinstance(cur, list) and step.isdigit() and int(step) < len(cur):
            cur = cur[int(step)]
        else:
            return MISSING
        if cur is None:
            return MISSING
    return cur


def text(value: Any) -> str:
    """How a scalar compares and renders: booleans lower-case, numbers without float noise, objects as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return str(value)


def unknown(path: str, shape: dict[str, Any]) -> bool:
    """True when ``path`` can never resolve on an enriched event: ``shape`` is the view of a record with every field
    set (``attrib route --check`` and start-up refuse such a tag or filter instead of skipping every event).
    Anything under ``properties.`` is the MMP's own data and always allowed."""
    cur: Any = shape
    for i, step in enumerate(path.split(".")):
        if i > 0 and path.split(".")[0] == "properties":
            return False
        if not isinstance(cur, dict) or step not in cur:
            return True
        cur = cur[step]
    return False
