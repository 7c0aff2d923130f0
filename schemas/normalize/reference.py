"""The reference normalizer (the test oracle; production runs schemas/normalize/__init__.py): pure functions from
(source config, raw delivery) to canonical events.

``normalize(source, raw)`` parses the delivery (JSON body, form body or query string), hands each event object to the
MMP's module (``extract``: the MMP-specific field mapping), then applies what every MMP shares: user key, event id
(the MMP's own, else a fingerprint over the fields that identify the event), platform inferred from device ids,
``properties`` = every field no column took, raw reference. Anything that cannot become a valid event raises
:class:`schemas.errors.NormalizeError` — and nothing else.
"""

from __future__ import annotations

import importlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from attrib.settings import SourceSettings
from schemas import canonical
from schemas.errors import EMPTY_BODY, INTERNAL, INVALID_JSON, NOT_AN_OBJECT, UNKNOWN_MMP, NormalizeError
from schemas.normalize.base import Extract
from schemas.normalize.payload import Payload
from schemas.templates import query_to_body
from schemas.user_key import FP_HEX, candidates, fingerprint, parse_delivery

MODULES = {m: f"schemas.normalize.{m}" for m in
           ("branch", "appsflyer", "adjust", "singular", "kochava", "tenjin", "linkrunner", "generic")}
MAX_BATCH = 10_000


def normalize(source: SourceSettings, raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Canonical event dicts for one raw delivery (a batch body gives several). Raises only NormalizeError."""
    try:
        return _normalize(source, raw)
    except NormalizeError:
        raise
    except RecursionError:
        raise NormalizeError(INVALID_JSON, None, "nested too deeply") from None
    except Exception as exc:  # a bug must still dead-letter the delivery, never crash the worker
        raise NormalizeError(INTERNAL, None, f"{type(exc).__name__}: {exc}") from exc


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _ms(v: Any) -> int:
    if isinstance(v, datetime):
        if v.tzinfo is not None:  # aware (as Avro decodes it): the difference is exact without astimezone
            return (v - _EPOCH) // _MS
        return (v.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    return int(time.time() * 1000)


def parse(source: SourceSettings, raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The delivery's event objects, or NormalizeError (empty body, invalid JSON, not an object)."""
    body = raw.get("body") or b""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    qs = raw.get("query_string") or ""
    headers = raw.get("headers") or {}
    ct = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    if not body.strip() and not qs.strip():
        raise NormalizeError(EMPTY_BODY, None, "no body and no query string")
    try:
        value = parse_delivery(source.mmp, body, qs, ct, source.options)
    except ValueError as exc:
        raise NormalizeError(INVALID_JSON, None, f"body is not JSON: {exc}") from None
    items = value if isinstance(value, list) else [value]
    if not items:
        raise NormalizeError(NOT_AN_OBJECT, None, "empty JSON array")
    if len(items) > MAX_BATCH:
        raise NormalizeError(NOT_AN_OBJECT, None, f"batch of {len(items)} events exceeds {MAX_BATCH}")
    for i, it in enumerate(items):
        if not isinstance(it, dict):
            where = f"[{i}]" if isinstance(value, list) else None
            raise NormalizeError(NOT_AN_OBJECT, where, f"expected a JSON object, got {type(it).__name__}")
        if not it:
            raise NormalizeError(EMPTY_BODY, None, "empty JSON object")
    return items


def _module(mmp: str) -> Any:
    if mmp not in MODULES:
        raise NormalizeError(UNKNOWN_MMP, "mmp", f"no normalizer for {mmp!r}; known: {', '.join(sorted(MODULES))}")
    mod = _LOADED.get(mmp)
    if mod is None:
        mod = _LOADED[mmp] = importlib.import_module(MODULES[mmp])
    return mod


_LOADED: dict[str, Any] = {}


def event_fingerprint(mmp: str, app_id: str | None, who: str | None, id_fields: dict[str, Any] | None,
                      whole: dict[str, Any]) -> str:
    """``fp:<hex>`` over mmp, app, the user key candidate and the MMP's identifying fields. Without a device/user id
    (or identifying fields) the whole object counts, so two anonymous events never share an id."""
    fields = id_fields if id_fields is not None and who is not None else whole
    basis = {"mmp": mmp, "app_id": app_id, "who": who, "fields": fields}
    return "fp:" + fingerprint(basis)[:FP_HEX]


def _with_query(rest: dict[str, Any], raw: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """A body delivery's URL parameters (secrets dropped) are kept too, under ``_query``."""
    body, qs = raw.get("body") or b"", raw.get("query_string") or ""
    if qs and body.strip():
        extra = query_to_body("", qs, options)
        if extra:
            rest = {**rest, "_query": extra}
    return rest


def _normalize(source: SourceSettings, raw: dict[str, Any]) -> list[dict[str, Any]]:
    mod = _module(source.mmp)
    items = parse(source, raw)
    options = source.options if isinstance(source.options, dict) else {}
    received_at = _ms(raw.get("received_at"))
    ref = raw.get("raw_ref")
    raw_ref = ({"topic": str(ref["topic"]), "partition": int(ref["partition"]), "offset": int(ref["offset"])}
               if isinstance(ref, dict) else None)
    out = []
    for item in items:
        p = Payload(item)
        ext: Extract = mod.extract(p, options)
        f = ext.fields
        who = candidates(ext.key_mmp or source.mmp, item)
        app_id = f.pop("app_id", None) or raw.get("app_id") or source.app_id
        if not f.get("platform"):
            f["platform"] = ("ios" if f.get("idfa") or f.get("idfv")
                             else "android" if f.get("gaid") or f.get("android_id") or f.get("oaid") else None)
        event_id = f.pop("event_id", None) or event_fingerprint(
            source.mmp, app_id, who[0] if who else None, ext.id_fields, item)
        out.append(canonical.build(
            event_id=event_id, mmp=source.mmp, source=source.name, app_id=app_id, received_at=received_at,
            user_key=who[0] if who else "fp:" + fingerprint(item)[:FP_HEX],
            properties=canonical.properties_json(_with_query(p.rest(), raw, options)), raw=raw_ref, **f))
    return out
