"""The compiled extraction machinery of the production normalizer: field paths split once into direct dict lookups,
column tables read in one tight loop, the ``properties`` remainder computed only under the paths a column took.

Semantics are the reference's (schemas/normalize/payload.py): a path is *taken* when it holds a value that is not an
object or a list, even when that value reads as absent (``"null"``); a column reads its paths in order and stops at the
first that gives a value; a present-but-invalid value raises ``invalid_field`` naming the path.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from schemas import canonical
from schemas import fields as F
from schemas.errors import INVALID_FIELD, NormalizeError

Conv = Callable[[Any], Any]
Path = tuple[str, str, tuple[str, ...] | None]  # dotted path, first key, the remaining keys (None: top level)
Paths = tuple[Path, ...]
Column = tuple[str, Conv, Paths]
# What an MMP's extract returns: canonical column values (plus app_id, event_id), the fields the fingerprint
# identifies the event by (None = the whole object), the user-key rule when not the source's MMP, and top-level
# fields to show decoded in properties.
Extracted = tuple[dict[str, Any], dict[str, Any] | None, str | None, dict[str, Any] | None]



def _time(v: Any) -> int | None:
    """``F.time_ms`` with its commonest inputs in integer arithmetic — epoch seconds or ms as an int or an ASCII digit
    string, and UTC ``YYYY-MM-DD[ T]HH:MM:SS[.fff…][Z]``; every other shape, and every error, through ``F.time_ms``."""
    cls = v.__class__
    if cls is int:
        n: int | None = v
    elif cls is str and v.isascii():
        n = int(v) if len(v) < 19 and v.isdigit() else None
        if n is None and len(v) >= 19:
            ms = _iso_ms(v)
            if ms is not None and F.MIN_MS <= ms < F.MAX_MS:
                return ms
    else:
        n = None
    if n is not None:
        ms = n * 1000 if n < 100_000_000_000 else n
        if F.MIN_MS <= ms < F.MAX_MS:
            return ms
    return F.time_ms(v)


_FROMISO = datetime.fromisoformat
_EPOCH = datetime(1970, 1, 1)
_MS = timedelta(milliseconds=1)


def _iso_ms(s: str) -> int | None:
    """UTC epoch ms of an ASCII ``YYYY-MM-DD[ T]HH:MM:SS[.f…][Z]`` (fraction truncated to ms, as ``F.time_ms``), or
    None for anything else, an impossible date included (then ``F.time_ms`` decides). The date and time are read by
    ``datetime.fromisoformat`` (C) once the shape is checked here: it accepts more shapes than this one."""
    if s[4] != "-" or s[7] != "-" or s[10] not in " T" or s[13] != ":" or s[16] != ":":
        return None
    tail = s[19:-1] if s[-1] == "Z" else s[19:]
    frac = 0
    if tail:
        digits = tail[1:]
        if tail[0] != "." or not digits.isdigit():
            return None
        frac = int(digits[:3]) * _SCALE[len(digits)] if len(digits) < 3 else int(digits[:3])
    try:
        dt = _FROMISO(s[:19])  # its C parser takes only ASCII digits between the separators checked above
    except ValueError:
        return None
    return (dt - _EPOCH) // _MS + frac


_SCALE = (0, 100, 10)


TEXT, DEV, BOOL, TIME, DEC, CUR = F.text, F.device_id, F.boolean, _time, F.decimal, F.currency
_ABSENT_MAX = max(map(len, F.ABSENT))


def paths(*dotted: str) -> Paths:
    out = []
    for p in dotted:
        parts = p.split(".")
        out.append((p, parts[0], tuple(parts[1:]) or None))
    return tuple(out)


def columns(*specs: tuple[Any, ...]) -> tuple[Column, ...]:
    """``(column, conv, path, path, ...)`` rows compiled once (module import)."""
    return tuple((spec[0], spec[1], paths(*spec[2:])) for spec in specs)


def peek(d: dict[str, Any], p: Path) -> Any:
    """The value at a path, not taken (the reference's ``peek``)."""
    raw = d.get(p[1])
    if p[2] is not None:
        for k in p[2]:
            raw = raw.get(k) if isinstance(raw, dict) else None
    return raw


def first(d: dict[str, Any], used: set[str], ps: Paths, conv: Conv) -> Any:
    """The first path giving a value (converted), marking each path read as taken."""
    for path, k, more in ps:
        raw = d.get(k)
        if more is not None:
            for m in more:
                raw = raw.get(m) if isinstance(raw, dict) else None
        if raw is None or isinstance(raw, (dict, list)):  # an object where a value belongs stays in properties
            continue
        used.add(path)
        try:
            v = conv(raw)
        except ValueError as exc:
            raise NormalizeError(INVALID_FIELD, path, str(exc)) from None
        if v is not None:
            return v
    return None


Fill = Callable[[dict[str, Any], set[str], dict[str, Any]], None]


def compile_fill(cols: tuple[Column, ...]) -> Fill:
    """A column table → one straight-line function ``fill(d, used, out)``, generated once (module import): each
    column reads its paths in order (``first`` unrolled), text read inline. Only non-raising conversions (text, device
    id, boolean): raising ones keep their place in each MMP's order, so errors name the same field as the reference.
    """
    env: dict[str, Any] = {"isinstance": isinstance, "len": len, "ABSENT": F.ABSENT, "MAX": _ABSENT_MAX,
                           "str": str, "dict": dict, "list": list, "ZERO": F._ZERO_ID.match}  # device_id's own pattern
    lines = ["def fill(d, used, out):", "    add = used.add"]
    # The objects nested paths read through, each looked up once (reads are pure: order does not matter), None
    # where the step is missing or not an object.
    parents: dict[tuple[str, ...], str] = {}
    for _, _, ps in cols:
        for _, k, more in ps:
            chain = (k, *(more or ()))[:-1]
            for n in range(1, len(chain) + 1):
                if chain[:n] not in parents:
                    var = parents[chain[:n]] = f"p{len(parents)}"
                    up = parents.get(chain[:n - 1])
                    src = (f"d.get({chain[0]!r})" if n == 1
                           else f"{up}.get({chain[n - 1]!r}) if {up} is not None else None")
                    lines += [f"    {var} = {src}", f"    if not isinstance({var}, dict): {var} = None"]
    for i, (name, conv, ps) in enumerate(cols):
        if conv not in (TEXT, DEV, BOOL):
            raise ValueError(f"{name}: only text, device id and boolean columns can be filled")
        env[f"conv{i}"] = conv
        lines.append("    v = None")
        for j, (path, k, more) in enumerate(ps):
            ind = "    "
            if j > 0:  # the next path only when the previous ones gave nothing
                lines.append("    if v is None:")
                ind = "        "
            if more:
                up = parents[(k, *more)[:-1]]
                lines.append(f"{ind}raw = {up}.get({more[-1]!r}) if {up} is not None else None")
            else:
                lines.append(f"{ind}raw = d.get({k!r})")
            lines.append(f"{ind}if raw is not None and not isinstance(raw, (dict, list)):")
            lines.append(f"{ind}    add({path!r})")
            if conv is TEXT or conv is DEV:  # F.text's (and F.device_id's) string case inline
                lines.append(f"{ind}    if raw.__class__ is str:")
                lines.append(f"{ind}        v = raw.strip()")
                lines.append(f"{ind}        if len(v) <= MAX and v.lower() in ABSENT:")
                lines.append(f"{ind}            v = None")
                if conv is DEV:
                    lines.append(f"{ind}        elif ZERO(v):")
                    lines.append(f"{ind}            v = None")
                    lines.append(f"{ind}        else:")
                    lines.append(f"{ind}            v = v.lower()")
                lines.append(f"{ind}    else:")
                lines.append(f"{ind}        v = conv{i}(raw)")
            else:
                lines.append(f"{ind}    v = conv{i}(raw)")
        lines.append("    if v is not None:")
        lines.append(f"        out[{name!r}] = v")
    exec("\n".join(lines), env)
    fn: Fill = env["fill"]
    return fn


def rest(data: dict[str, Any], used: set[str], replaced: dict[str, Any] | None) -> dict[str, Any]:
    """Every field no column took, nested objects pruned of taken fields (originally-empty objects kept): the
    reference's ``Payload.rest``, descending only into objects under a taken path."""
    d = {**data, **replaced} if replaced else data
    under: set[str] = set()
    for p in used:
        if "." in p:
            under.update(_prefixes(p))
    if not under:
        return {k: v for k, v in d.items() if k not in used}
    return _strip(d, "", used, under)


_PREFIXES: dict[str, tuple[str, ...]] = {}  # "a.b.c" -> ("a", "a.b"); paths are the plans' constants


def _prefixes(path: str) -> tuple[str, ...]:
    got = _PREFIXES.get(path)
    if got is None:
        got = tuple(path[:i] for i, c in enumerate(path) if c == ".")
        if len(_PREFIXES) < 4096:
            _PREFIXES[path] = got
    return got


def _strip(d: dict[str, Any], prefix: str, used: set[str], under: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        path = prefix + k
        if path in used:
            continue
        if path in under and isinstance(v, dict) and v:
            sub = _strip(v, path + ".", used, under)
            if sub:
                out[k] = sub
        else:
            out[k] = v
    return out


_ETYPES: dict[tuple[str, int], str] = {}


def event_type(name: str, options: dict[str, Any], defaults: dict[str, str] | None = None) -> str:
    """``canonical.event_type``, remembered per (name, defaults table) when the source maps no names itself: event
    names are few and repeat on every delivery. ``defaults`` must be a module constant (its id is the key)."""
    if options.get("event_types"):
        return canonical.event_type(name, options, defaults)
    key = (name, id(defaults))
    hit = _ETYPES.get(key)
    if hit is None:
        hit = canonical.event_type(name, options, defaults)
        if len(_ETYPES) >= 4096:  # names are the MMPs' event names; a flood of distinct ones only costs a recompute
            _ETYPES.clear()
        _ETYPES[key] = hit
    return hit


_DECODE = msgspec.json.Decoder(float_hook=Decimal).decode


def json_in_string(v: Any) -> Any:
    """``F.json_in_string`` (JSON carried in a string, e.g. AppsFlyer ``event_value``) through msgspec; what msgspec
    refuses (NaN, lone surrogates, deep nesting, …) the reference decides."""
    if isinstance(v, str) and v[:1] in ("{", "["):
        try:
            return _DECODE(v)
        except (ValueError, RecursionError):  # msgspec.DecodeError is a ValueError; so is UnicodeEncodeError
            return F.json_in_string(v)
    return v


def revenue_cents(cents: Decimal) -> Decimal:
    return (cents / 100).quantize(Decimal("1e-9"))
