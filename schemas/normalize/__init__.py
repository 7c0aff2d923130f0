"""Normalizers: pure functions from (source config, raw delivery) to canonical events.

``normalize(source, raw)`` parses the delivery (JSON body, form body or query string: fast/parse.py), runs the MMP's
compiled extraction (fast/<mmp>.py over fast/plan.py: field paths split once into direct lookups, column tables
generated into straight-line functions), then
applies what every MMP shares: user key, event id (the MMP's own, else a fingerprint over the fields that identify the
event), platform inferred from device ids, ``properties`` = every field no column took, raw reference. Anything that
cannot become a valid event raises :class:`schemas.errors.NormalizeError` — and nothing else.

The per-MMP modules beside this one (branch.py, appsflyer.py, …, read through payload.py) with reference.py are the
reference implementation: plainer to read, the documentation of each mapping, and the oracle the tests hold this
path to (same events, same errors, on every sample and on generated payloads). Production never calls them.

Speed (README "Stream worker", "Design for speed"): JSON through msgspec (floats as Decimal, like the reference),
properties and fingerprints through orjson (fast/encode.py); anything either refuses (lone surrogates, NaN, integers
beyond 64 bits, deep nesting) goes through the reference's json-module paths, so the bytes are the same either way.
"""

from __future__ import annotations

import importlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from attrib.settings import SourceSettings
from schemas.errors import INTERNAL, INVALID_JSON, UNKNOWN_MMP, NormalizeError
from schemas.normalize.fast.encode import build, clean_text, fingerprint_of, properties
from schemas.normalize.fast.keys import first_key
from schemas.normalize.fast.parse import Query, parse
from schemas.normalize.fast.plan import rest

MMPS = ("branch", "appsflyer", "adjust", "singular", "kochava", "tenjin", "linkrunner", "generic")
MODULES = {m: f"schemas.normalize.fast.{m}" for m in MMPS}
__all__ = ["MMPS", "MODULES", "normalize"]
_EXTRACT = {m: importlib.import_module(mod).extract for m, mod in MODULES.items()}


def normalize(source: SourceSettings, raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Canonical event dicts for one raw delivery (a batch body gives several). Raises only NormalizeError."""
    try:
        return _normalize(_plan(source), raw)
    except NormalizeError:
        raise
    except RecursionError:
        raise NormalizeError(INVALID_JSON, None, "nested too deeply") from None
    except Exception as exc:  # a bug must still dead-letter the delivery, never crash the worker
        raise NormalizeError(INTERNAL, None, f"{type(exc).__name__}: {exc}") from exc


class Plan:
    """What one source needs, compiled on its first delivery (per SourceSettings object: settings are read once at
    start and never changed in place — a changed source is a new object, hence a new plan)."""

    def __init__(self, source: SourceSettings) -> None:
        if source.mmp not in _EXTRACT:
            raise NormalizeError(UNKNOWN_MMP, "mmp", f"no normalizer for {source.mmp!r}; known: "
                                                     f"{', '.join(sorted(_EXTRACT))}")
        self.source = source
        self.extract = _EXTRACT[source.mmp]
        self.key = first_key(source.mmp)
        self.options = source.options if isinstance(source.options, dict) else {}
        self.query = Query(source.mmp, source.options)
        self.extra_query = Query("", self.options)  # a body delivery's URL parameters, kept under "_query"
        self.mmp, self.name = source.mmp, clean_text(source.name)  # the event's mmp and source, valid UTF-8


_PLANS: dict[int, Plan] = {}


def _plan(source: SourceSettings) -> Plan:
    plan = _PLANS.get(id(source))
    if plan is None or plan.source is not source:
        plan = Plan(source)
        if len(_PLANS) > 1024:  # sources are configuration: a handful; tests build many
            _PLANS.clear()
        _PLANS[id(source)] = plan
    return plan


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _ms(v: Any) -> int:
    if isinstance(v, datetime):
        if v.tzinfo is not None:
            return (v - _EPOCH) // _MS
        return (v.astimezone(UTC) - _EPOCH) // _MS
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    return int(time.time() * 1000)


def _normalize(plan: Plan, raw: dict[str, Any]) -> list[dict[str, Any]]:
    items, fast, clean = parse(plan.query, raw)
    extract, key_of, options, mmp, name = plan.extract, plan.key, plan.options, plan.mmp, plan.name
    received_at = _ms(raw.get("received_at"))
    ref = raw.get("raw_ref")
    raw_ref = ({"topic": str(ref["topic"]), "partition": int(ref["partition"]), "offset": int(ref["offset"])}
               if isinstance(ref, dict) else None)
    qs = raw.get("query_string") or ""
    extra = plan.extra_query.body(qs) if qs and (raw.get("body") or b"").strip() else None
    default_app = raw.get("app_id") or plan.source.app_id
    out = []
    for item in items:
        used: set[str] = set()
        f, id_fields, key_mmp, replaced = extract(item, used, options)
        who = (key_of if key_mmp is None else first_key(key_mmp))(item)
        pop = f.pop
        app_id = pop("app_id", None) or default_app
        if not f.get("platform"):
            f["platform"] = ("ios" if f.get("idfa") or f.get("idfv")
                             else "android" if f.get("gaid") or f.get("android_id") or f.get("oaid") else None)
        event_id = pop("event_id", None)
        if not event_id:
            fields = id_fields if id_fields is not None and who else item
            event_id = fingerprint_of({"mmp": mmp, "app_id": app_id, "who": who, "fields": fields}, fast)
        props = rest(item, used, replaced)
        if extra:
            props["_query"] = extra  # rest's dict is a fresh one
        f["event_id"] = event_id
        f["mmp"] = mmp
        f["source"] = name
        f["app_id"] = app_id
        f["received_at"] = received_at
        f["user_key"] = who or fingerprint_of(item, fast)
        f["properties"] = properties(props, fast)
        f["raw"] = raw_ref
        out.append(build(f, clean))
    return out
