"""Normalizers: pure functions from (source config, raw delivery) to canonical events.

``normalize(source, raw)`` parses the delivery (JSON body, form body or query string), runs the MMP's compiled
extraction (schemas/normalize/fast/: field paths split once into direct lookups, column tables read in one loop), then
applies what every MMP shares: user key, event id (the MMP's own, else a fingerprint over the fields that identify the
event), platform inferred from device ids, ``properties`` = every field no column took, raw reference. Anything that
cannot become a valid event raises :class:`schemas.errors.NormalizeError` — and nothing else.

The per-MMP modules beside this one (branch.py, appsflyer.py, …, read through payload.py) with reference.py are the
reference implementation: plainer to read, the documentation of each mapping, and the oracle the tests hold this
path to (same events, same errors, on every sample and on generated payloads). Production never calls them.

Speed (README "Stream worker"): JSON through msgspec (floats as Decimal, like the reference), properties and
fingerprints through orjson; anything either refuses (lone surrogates, NaN, integers beyond 64 bits, deep nesting)
goes through the reference's json-module paths, so the bytes are the same either way.
"""

from __future__ import annotations

import hashlib
import importlib
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import msgspec
import orjson

from attrib.settings import SourceSettings
from schemas import canonical
from schemas.errors import (
    EMPTY_BODY,
    INTERNAL,
    INVALID_FIELD,
    INVALID_JSON,
    MISSING_FIELD,
    NOT_AN_OBJECT,
    UNKNOWN_MMP,
    NormalizeError,
)
from schemas.fields import loads
from schemas.normalize.fast.plan import rest
from schemas.templates import DEFAULT_MAPS, SECRET_PARAMS
from schemas.user_key import FP_HEX, candidates, fingerprint

MMPS = ("branch", "appsflyer", "adjust", "singular", "kochava", "tenjin", "linkrunner", "generic")
MODULES = {m: f"schemas.normalize.fast.{m}" for m in MMPS}
MAX_BATCH = 10_000
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


class Query:
    """A query string → the body dict the MMP would POST (schemas/templates.py ``query_to_body``), the name mapping
    and secret names resolved once per source."""

    def __init__(self, mmp: str, options: dict[str, Any] | None) -> None:
        options = options or {}
        mapping = dict(DEFAULT_MAPS.get(mmp, {}))
        custom = options.get("query_map")
        if isinstance(custom, dict):
            mapping.update({str(k): str(v) for k, v in custom.items()})
        self.paths = {k: v.split(".") for k, v in mapping.items()}
        extra = options.get("secret_params")
        named = [*(extra if isinstance(extra, list) else [extra]), options.get("url_secret_param")]
        self.secret = SECRET_PARAMS | {p.lower() for p in named if isinstance(p, str)}

    def body(self, query_string: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        mapped, secret = self.paths, self.secret
        for k, v in query_dict(query_string).items():
            if k.lower() in secret:
                continue
            parts = mapped.get(k)
            if parts is None:
                if "." not in k:  # most parameters: a top-level field of their own name
                    if k not in out:
                        out[k] = v
                    continue
                parts = k.split(".")
            d = out
            for p in parts[:-1]:
                nxt = d.get(p)
                if not isinstance(nxt, dict):
                    nxt = d[p] = {}
                d = nxt
            d.setdefault(parts[-1], v)
        return out


def query_dict(query_string: str) -> dict[str, str]:
    """``schemas.fields.query_dict`` (parse_qsl, blanks kept, first wins) without unquoting what has nothing to
    unquote."""
    out: dict[str, str] = {}
    for part in query_string.split("&") if query_string else ():
        if not part:
            continue
        k, _, v = part.partition("=")
        if "+" in k:
            k = k.replace("+", " ")
        if "%" in k:
            k = unquote(k, errors="replace")
        if k in out:
            continue
        if "+" in v:
            v = v.replace("+", " ")
        if "%" in v:
            v = unquote(v, errors="replace")
        out[k] = v
    return out


class Plan:
    """What one source needs, compiled on its first delivery."""

    def __init__(self, source: SourceSettings) -> None:
        if source.mmp not in _EXTRACT:
            raise NormalizeError(UNKNOWN_MMP, "mmp", f"no normalizer for {source.mmp!r}; known: "
                                                     f"{', '.join(sorted(_EXTRACT))}")
        self.source = source
        self.extract = _EXTRACT[source.mmp]
        self.options = source.options if isinstance(source.options, dict) else {}
        self.query = Query(source.mmp, source.options)
        self.extra_query = Query("", self.options)  # a body delivery's URL parameters, kept under "_query"


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


_DECODE = msgspec.json.Decoder(float_hook=Decimal).decode  # exact numbers, as schemas.fields.loads


def parse(plan: Plan, raw: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """The delivery's event objects and whether the fast decoder read them (else the json module did: then the
    encoders below take the json module's paths too)."""
    body = raw.get("body") or b""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    qs = raw.get("query_string") or ""
    headers = raw.get("headers") or {}
    ct = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    stripped = body.strip()
    if not stripped and not qs.strip():
        raise NormalizeError(EMPTY_BODY, None, "no body and no query string")
    fast = True
    if not stripped:
        value: Any = plan.query.body(qs)
    elif "form-urlencoded" in (ct or "").lower():
        value = query_dict(stripped.decode("utf-8", "replace"))
    else:
        try:
            value = _DECODE(stripped)
        except (msgspec.DecodeError, RecursionError):  # what msgspec refuses, the json module decides (and words)
            fast = False
            try:
                value = loads(stripped)
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
    return items, fast


_SORT = orjson.OPT_SORT_KEYS


def _fingerprint(value: Any, fast: bool) -> str:
    if fast:
        try:
            return hashlib.sha256(orjson.dumps(value, default=str, option=_SORT)).hexdigest()
        except TypeError:  # orjson.JSONEncodeError: ints beyond 64 bits, lone surrogates, deep nesting
            pass
    return fingerprint(value)


def _props_default(v: Any) -> Any:
    if isinstance(v, Decimal):  # canonical._json_default, the float written as the json module writes it
        f = float(v)
        return orjson.Fragment(repr(f)) if Decimal(repr(f)) == v else str(v)
    if isinstance(v, (bytes, bytearray)):
        return v.decode("utf-8", "replace")
    return str(v)


def _properties(rest: dict[str, Any], fast: bool) -> str:
    if fast:
        try:
            return orjson.dumps(rest, default=_props_default, option=_SORT).decode()
        except TypeError:
            pass
    return canonical.properties_json(rest)


def _normalize(plan: Plan, raw: dict[str, Any]) -> list[dict[str, Any]]:
    items, fast = parse(plan, raw)
    source, options = plan.source, plan.options
    mmp = source.mmp
    received_at = _ms(raw.get("received_at"))
    ref = raw.get("raw_ref")
    raw_ref = ({"topic": str(ref["topic"]), "partition": int(ref["partition"]), "offset": int(ref["offset"])}
               if isinstance(ref, dict) else None)
    qs = raw.get("query_string") or ""
    extra = plan.extra_query.body(qs) if qs and (raw.get("body") or b"").strip() else None
    out = []
    for item in items:
        used: set[str] = set()
        f, id_fields, key_mmp, replaced = plan.extract(item, used, options)
        who = candidates(key_mmp or mmp, item)
        app_id = f.pop("app_id", None) or raw.get("app_id") or source.app_id
        if not f.get("platform"):
            f["platform"] = ("ios" if f.get("idfa") or f.get("idfv")
                             else "android" if f.get("gaid") or f.get("android_id") or f.get("oaid") else None)
        event_id = f.pop("event_id", None)
        if not event_id:
            fields = id_fields if id_fields is not None and who else item
            basis = {"mmp": mmp, "app_id": app_id, "who": who[0] if who else None, "fields": fields}
            event_id = "fp:" + _fingerprint(basis, fast)[:FP_HEX]
        props = rest(item, used, replaced)
        if extra:
            props = {**props, "_query": extra}
        f.update(event_id=event_id, mmp=mmp, source=source.name, app_id=app_id, received_at=received_at,
                 user_key=who[0] if who else "fp:" + _fingerprint(item, fast)[:FP_HEX],
                 properties=_properties(props, fast), raw=raw_ref)
        out.append(build(f))
    return out


_FIELDS = canonical.FIELDS
_REV_SCALE = Decimal("1e-9")


def _clean(s: str) -> str:
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "replace").decode("utf-8")


_EMPTY = dict.fromkeys(_FIELDS)


def build(kw: dict[str, Any]) -> dict[str, Any]:
    """``canonical.build`` over a dict of canonical fields (in schema order, absent ones None)."""
    ev = {**_EMPTY, **kw}
    if len(ev) != len(_EMPTY):
        raise TypeError(f"unknown canonical fields: {sorted(set(kw) - set(_EMPTY))}")
    for f, v in kw.items():
        if type(v) is str and not v.isascii():
            ev[f] = _clean(v)
    for f in canonical.REQUIRED_TEXT:
        if not ev[f]:
            raise NormalizeError(MISSING_FIELD, f, f"no value for {f}")
    if ev["event_type"] not in canonical.EVENT_TYPES:
        raise NormalizeError(INVALID_FIELD, "event_type", f"unknown event type {ev['event_type']!r}")
    for f in ("event_time", "received_at"):
        if type(ev[f]) is not int:
            raise NormalizeError(MISSING_FIELD, f, f"{f} must be epoch milliseconds")
    if ev["platform"] is not None and ev["platform"] not in canonical.PLATFORMS:
        ev["platform"] = None
    if ev["is_organic"] is True and not ev["media_source"]:
        ev["media_source"] = "organic"
    if ev["revenue"] is not None:
        ev["revenue"] = Decimal(ev["revenue"]).quantize(_REV_SCALE)
    else:
        ev["currency"] = None
    if ev["properties"] is None:
        ev["properties"] = "{}"
    return ev
