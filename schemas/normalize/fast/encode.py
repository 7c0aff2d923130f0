"""The compiled normalizer's output side: fingerprints and ``properties`` through orjson (sorted keys, the json
module's float text for exact decimals) with the json module's encoders for whatever orjson refuses or whenever the
delivery was decoded by the json module, and ``canonical.build`` over a dict — the same bytes as the reference."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import orjson

from schemas import canonical
from schemas.errors import INVALID_FIELD, MISSING_FIELD, NormalizeError
from schemas.user_key import FP_HEX, fingerprint

_SORT = orjson.OPT_SORT_KEYS


def fingerprint_of(value: Any, fast: bool) -> str:
    """``"fp:"`` + the first FP_HEX hex digits of ``schemas.user_key.fingerprint`` (sha256 of sorted-key compact
    JSON, Decimals as strings): the ids already persisted, so the scheme stays exactly this."""
    if fast:
        try:
            return "fp:" + _SHA256(orjson.dumps(value, default=str, option=_SORT)).digest()[:_FP_BYTES].hex()
        except TypeError:  # orjson.JSONEncodeError: ints beyond 64 bits, lone surrogates, deep nesting
            pass
    return "fp:" + fingerprint(value)[:FP_HEX]


_SHA256, _FP_BYTES = hashlib.sha256, FP_HEX // 2


def props_default(v: Any) -> Any:
    if isinstance(v, Decimal):  # canonical._json_default, the float written as the json module writes it
        f = float(v)
        return orjson.Fragment(repr(f)) if Decimal(repr(f)) == v else str(v)
    if isinstance(v, (bytes, bytearray)):
        return v.decode("utf-8", "replace")
    return str(v)


def properties(rest: dict[str, Any], fast: bool) -> str:
    """``canonical.properties_json``: the JSON object text of what no column took."""
    if fast:
        try:
            return orjson.dumps(rest, default=props_default, option=_SORT).decode()
        except TypeError:
            pass
    return canonical.properties_json(rest)


_FIELDS = canonical.FIELDS
_REV_SCALE = Decimal("1e-9")


def clean_text(s: str) -> str:
    """``canonical._clean``: a string with lone surrogates replaced, so it is valid UTF-8."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "replace").decode("utf-8")


_EMPTY = dict.fromkeys(_FIELDS)


def build(kw: dict[str, Any], clean: bool = False) -> dict[str, Any]:
    """``canonical.build`` over a dict of canonical fields (in schema order, absent ones None). ``clean``: every
    string but ``app_id`` is known to be valid Unicode — the delivery's because msgspec decoded them, ``mmp`` and
    ``source`` because the caller passes them cleaned (``clean_text``) — so only ``app_id`` (which may come from the
    raw record or the source's settings) is checked for lone surrogates."""
    ev = {**_EMPTY, **kw}
    if len(ev) != len(_EMPTY):
        raise TypeError(f"unknown canonical fields: {sorted(set(kw) - set(_EMPTY))}")
    if clean:
        v = ev["app_id"]
        if type(v) is str and not v.isascii():
            ev["app_id"] = clean_text(v)
    else:
        for f, v in kw.items():
            if type(v) is str and not v.isascii():
                ev[f] = clean_text(v)
    if not (ev["event_id"] and ev["mmp"] and ev["source"] and ev["event_name"] and ev["event_type"]
            and ev["user_key"]):  # canonical.REQUIRED_TEXT, unrolled
        for f in _REQUIRED:
            if not ev[f]:
                raise NormalizeError(MISSING_FIELD, f, f"no value for {f}")
    if ev["event_type"] not in _EVENT_TYPES:
        raise NormalizeError(INVALID_FIELD, "event_type", f"unknown event type {ev['event_type']!r}")
    if type(ev["event_time"]) is not int:
        raise NormalizeError(MISSING_FIELD, "event_time", "event_time must be epoch milliseconds")
    if type(ev["received_at"]) is not int:
        raise NormalizeError(MISSING_FIELD, "received_at", "received_at must be epoch milliseconds")
    p = ev["platform"]
    if p is not None and p not in _PLATFORMS:
        ev["platform"] = None
    if ev["is_organic"] is True and not ev["media_source"]:
        ev["media_source"] = "organic"
    r = ev["revenue"]
    if r is not None:
        ev["revenue"] = (r if r.__class__ is Decimal else Decimal(r)).quantize(_REV_SCALE)
    else:
        ev["currency"] = None
    if ev["properties"] is None:
        ev["properties"] = "{}"
    return ev


_REQUIRED, _EVENT_TYPES, _PLATFORMS = canonical.REQUIRED_TEXT, canonical.EVENT_TYPES, canonical.PLATFORMS
assert _REQUIRED == ("event_id", "mmp", "source", "event_name", "event_type", "user_key"), "build's unrolled check"
