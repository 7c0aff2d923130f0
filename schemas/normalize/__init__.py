"""Normalizers: pure functions from (source config, raw delivery) to canonical events.

``normalize(source, raw)`` parses the delivery (JSON body, form body or query string: fast/parse.py), runs the MMP's
generated function (fast/gen.py from fast/<mmp>.py: one straight-line function per MMP, bound per source to the
source's constants; print one with ``attrib normalize --show-plan MMP``), which also applies what every MMP shares:
user key, event id (the MMP's own, else a fingerprint over the fields that identify the event), platform inferred
from device ids, ``properties`` = every field no column took, raw reference. Anything that
cannot become a valid event raises :class:`schemas.errors.NormalizeError` — and nothing else.

The per-MMP modules beside this one (branch.py, appsflyer.py, …, read through payload.py) with reference.py are the
reference implementation: plainer to read, the documentation of each mapping, and the oracle the tests hold this
path to (same events, same errors, on every sample and on generated payloads). Production never calls them.

Speed (README "Stream worker", "Design for speed"): JSON through msgspec (floats as Decimal, like the reference),
properties and fingerprints through orjson (fast/encode.py); anything either refuses (lone surrogates, NaN, integers
beyond 64 bits, deep nesting) goes through the reference's json-module paths, so the bytes are the same either way.
"""

from __future__ import annotations

import hashlib
import importlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from attrib.settings import SourceSettings
from schemas import canonical
from schemas.errors import INTERNAL, INVALID_JSON, MISSING_FIELD, UNKNOWN_MMP, NormalizeError
from schemas.normalize.fast.encode import clean_text, fingerprint_of, properties, props_default
from schemas.normalize.fast.gen import generate
from schemas.normalize.fast.keys import first_key
from schemas.normalize.fast.parse import Query, parse
from schemas.user_key import FP_HEX

MMPS = ("branch", "appsflyer", "adjust", "singular", "kochava", "tenjin", "linkrunner", "generic")
MODULES = {m: f"schemas.normalize.fast.{m}" for m in MMPS}
__all__ = ["MMPS", "MODULES", "normalize", "source_text"]


def normalize(source: SourceSettings, raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Canonical event dicts for one raw delivery (a batch body gives several). Raises only NormalizeError."""
    try:
        plan = _PLANS.get(id(source))
        if plan is None or plan.source is not source:
            plan = _plan(source)
        return plan.run(raw)
    except NormalizeError:
        raise
    except RecursionError:
        raise NormalizeError(INVALID_JSON, None, "nested too deeply") from None
    except Exception as exc:  # a bug must still dead-letter the delivery, never crash the worker
        raise NormalizeError(INTERNAL, None, f"{type(exc).__name__}: {exc}") from exc


_BIND: dict[str, tuple[str, Callable[..., Callable[[dict[str, Any]], list[dict[str, Any]]]]]] = {}


def _compiled(mmp: str) -> tuple[str, Callable[..., Callable[[dict[str, Any]], list[dict[str, Any]]]]]:
    """MMP ``mmp``'s generated ``bind`` (source constants → its normalize function) and its source text, built once
    per MMP, with one globals dict per MMP."""
    got = _BIND.get(mmp)
    if got is None:
        text, env = generate(mmp, importlib.import_module(MODULES[mmp]).body)
        module: dict[str, Any] = {**env, **_SHARED}
        exec(compile(text, f"<normalize {mmp}>", "exec"), module)  # the text holds only the MMP module's constants
        got = _BIND[mmp] = (text, module["bind"])
    return got


def source_text(mmp: str) -> str:
    """The generated function of ``mmp``, as Python source (``attrib normalize --show-plan MMP``)."""
    if mmp not in MODULES:
        raise NormalizeError(UNKNOWN_MMP, "mmp", f"no normalizer for {mmp!r}; known: {', '.join(sorted(MODULES))}")
    return _compiled(mmp)[0]


class Plan:
    """One source's normalize function: its MMP's generated code bound to the source's constants, compiled on its
    first delivery (per SourceSettings object: settings are read once at start and never changed in place — a
    changed source is a new object, hence a new plan)."""

    def __init__(self, source: SourceSettings) -> None:
        if source.mmp not in MODULES:
            raise NormalizeError(UNKNOWN_MMP, "mmp", f"no normalizer for {source.mmp!r}; known: "
                                                     f"{', '.join(sorted(MODULES))}")
        self.source = source
        options = source.options if isinstance(source.options, dict) else {}
        name = clean_text(source.name)  # the event's source, valid UTF-8
        self.run = _compiled(source.mmp)[1](
            MMP=source.mmp, SOURCE=name, SOURCE_APP=source.app_id, OPTIONS=options, KEY=first_key(source.mmp),
            QUERY=Query(source.mmp, source.options),
            EXTRA_QUERY=Query("", options),  # a body delivery's URL parameters, kept under "_query"
            TYPES={})  # event name -> event type, this source's


_PLANS: dict[int, Plan] = {}


def _plan(source: SourceSettings) -> Plan:
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


def _clean_all(ev: dict[str, Any]) -> None:
    """Strings that are not valid UTF-8 (lone surrogates) repaired, as canonical.build: a delivery the json module
    decoded may carry them anywhere."""
    bad = [(k, v) for k, v in ev.items() if v.__class__ is str and not v.isascii()]
    for k, v in bad:
        ev[k] = clean_text(v)


def _required(ev: dict[str, Any]) -> None:
    for f in canonical.REQUIRED_TEXT:
        if not ev[f]:
            raise NormalizeError(MISSING_FIELD, f, f"no value for {f}")


_SHARED: dict[str, Any] = {
    "PARSE": parse, "MS": _ms, "FINGERPRINT": fingerprint_of, "PROPERTIES": properties, "CLEAN_TEXT": clean_text,
    "SHA256": hashlib.sha256, "DUMPS": orjson.dumps, "SORT_KEYS": orjson.OPT_SORT_KEYS, "FP_BYTES": FP_HEX // 2,
    "PROPS_DEFAULT": props_default, "DATETIME": datetime, "EPOCH": _EPOCH, "MILLISECOND": _MS,
    "CLEAN_ALL": _clean_all, "REQUIRED": _required, "PLATFORMS": canonical.PLATFORMS,
    "EVENT_TYPES": canonical.EVENT_TYPES, "Decimal": Decimal, "REV_SCALE": Decimal("1e-9")}
