"""The compiled extraction machinery of the production normalizer: field paths split once into direct dict lookups,
column tables read in one tight loop, the ``properties`` remainder computed only under the paths a column took.

Semantics are the reference's (schemas/normalize/payload.py): a path is *taken* when it holds a value that is not an
object or a list, even when that value reads as absent (``"null"``); a column reads its paths in order and stops at the
first that gives a value; a present-but-invalid value raises ``invalid_field`` naming the path.
"""

from __future__ import annotations

import re
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
# Epoch ms of each ``YYYY-MM-DD`` + separator already read, and of each ``HH:MM:`` (a stream's times share days and
# minutes; 1,440 valid clocks, days bounded below): two dict reads instead of a datetime and a timedelta per time.
_DAYS: dict[str, int] = {}
_CLOCKS: dict[str, int] = {}


def _day_ms(key: str) -> int | None:
    """``YYYY-MM-DD`` followed by ``" "`` or ``"T"`` → epoch ms of that day, or None (any other shape, an impossible
    date). ``datetime.fromisoformat`` (C) reads the date once the shape is checked: it accepts more shapes."""
    if (key[4] != "-" or key[7] != "-" or key[10] not in " T" or not key[:4].isdigit() or not key[5:7].isdigit()
            or not key[8:10].isdigit()):
        return None
    try:
        ms: int = (_FROMISO(key[:10]) - _EPOCH) // _MS
    except ValueError:
        return None
    if len(_DAYS) >= 4096:  # ~11 years of distinct days; a flood of them only costs a recompute
        _DAYS.clear()
    _DAYS[key] = ms
    return ms


def _clock_ms(key: str) -> int | None:
    """``HH:MM:`` → ms since midnight, or None (any other shape, hour ≥ 24, minute ≥ 60: fromisoformat refuses)."""
    if key[2] != ":" or key[5] != ":" or not key[:2].isdigit() or not key[3:5].isdigit():
        return None
    h, m = int(key[:2]), int(key[3:5])
    if h > 23 or m > 59:
        return None
    ms = _CLOCKS[key] = (h * 60 + m) * 60_000  # at most 1,440 keys: only valid clocks are kept
    return ms


def _iso_ms(s: str) -> int | None:
    """UTC epoch ms of an ASCII ``YYYY-MM-DD[ T]HH:MM:SS[.f…][Z]`` (fraction truncated to ms, as ``F.time_ms``), or
    None for anything else, an impossible date included (then ``F.time_ms`` decides)."""
    day = _DAYS.get(s[:11])
    if day is None:
        day = _day_ms(s[:11])
        if day is None:
            return None
    clock = _CLOCKS.get(s[11:17])
    if clock is None:
        clock = _clock_ms(s[11:17])
        if clock is None:
            return None
    sec = _SECONDS.get(s[17:19])  # None: not two ASCII digits below 60
    if sec is None:
        return None
    frac = _FRACTIONS.get(s[19:])
    if frac is None:
        frac = _fraction_ms(s[19:])
        if frac is None:
            return None
    return day + clock + sec + frac


_SECONDS = {f"{n:02d}": n * 1000 for n in range(60)}
_FRACTIONS: dict[str, int] = {}  # "", "Z", ".123Z", …: ms


def _fraction_ms(tail: str) -> int | None:
    """What follows the seconds — nothing, or ``.`` and digits, then an optional ``Z`` — as ms (truncated, as
    ``F.time_ms``), or None for anything else."""
    digits = tail[:-1] if tail[-1:] == "Z" else tail
    if digits:
        if digits[0] != "." or not digits[1:].isdigit():
            return None
        digits = digits[1:]
        ms = int(digits[:3]) * _SCALE[len(digits)] if len(digits) < 3 else int(digits[:3])
    else:
        ms = 0
    if len(_FRACTIONS) >= 4096:  # 2,002 tails of up to 3 digits; longer fractions only cost a recompute
        _FRACTIONS.clear()
    _FRACTIONS[tail] = ms
    return ms


_SCALE = (0, 100, 10)
_Q9 = Decimal("1e-9")
_REV_MAX = Decimal("1e18")  # F.decimal's bound


_PLAIN_NUMBER = re.compile(r"-?[0-9]{1,17}(?:\.[0-9]+)?").fullmatch  # below 1e17: F.decimal's range holds


def _decimal(v: Any) -> Decimal | None:
    """``F.decimal`` with a JSON number (Decimal or int, as msgspec and the json module decode them) in range, or a
    plain decimal string (``"24.51"``), read directly: F.decimal's text round trip gives the same value; everything
    else, and every error, through ``F.decimal``."""
    cls = v.__class__
    if cls is str:
        if _PLAIN_NUMBER(v):
            return Decimal(v).quantize(_Q9)
    elif cls is Decimal:
        if v.is_finite() and -_REV_MAX < v < _REV_MAX:
            return v.quantize(_Q9)
    elif cls is int and -1_000_000_000_000_000_000 < v < 1_000_000_000_000_000_000:
        return Decimal(v).quantize(_Q9)
    return F.decimal(v)


def _currency(v: Any) -> str | None:
    """``F.currency`` with three ASCII letters read directly (not the null word "nil"); the rest through it."""
    if v.__class__ is str and len(v) == 3 and v.isascii() and v.isalpha() and v.lower() != "nil":
        return v.upper()
    return F.currency(v)


TEXT, DEV, BOOL, TIME, DEC, CUR = F.text, F.device_id, F.boolean, _time, _decimal, _currency
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


Reader = Callable[[dict[str, Any], set[str]], Any]
_ENV: dict[str, Any] = {"isinstance": isinstance, "len": len, "ABSENT": F.ABSENT, "MAX": _ABSENT_MAX, "dict": dict,
                        "list": list, "ZERO": F._ZERO_ID.match, "NormalizeError": NormalizeError,
                        "INVALID_FIELD": INVALID_FIELD}


def _inline(conv: Conv, ind: str, conv_name: str) -> list[str]:
    """``v = conv(raw)`` with ``F.text``'s (and ``F.device_id``'s) string case inline; ``raw`` is a present value."""
    if conv is not TEXT and conv is not DEV:
        return [f"{ind}v = {conv_name}(raw)"]
    lines = [f"{ind}if raw.__class__ is str:",
             f"{ind}    v = raw.strip()",
             f"{ind}    if len(v) <= MAX and v.lower() in ABSENT:",
             f"{ind}        v = None"]
    if conv is DEV:  # a non-empty id is all zeros only if it starts with one of them
        lines += [f"{ind}    elif v[0] in '0-' and ZERO(v):",
                  f"{ind}        v = None",
                  f"{ind}    else:",
                  f"{ind}        v = v.lower()"]
    return [*lines, f"{ind}else:", f"{ind}    v = {conv_name}(raw)"]


def reader(conv: Conv, *dotted: str) -> Reader:
    """``read(d, used)``: the first of ``dotted``'s paths giving a value (converted), marking each path read as taken
    — an object or a list where a value belongs stays in properties, and a present-but-invalid value raises
    ``invalid_field`` naming its path. Generated once per MMP constant (module import): no loop, no generic walk."""
    env: dict[str, Any] = {**_ENV, "conv": conv}
    lines = ["def read(d, used):"]
    for path, k, more in paths(*dotted):
        lines.append(f"    raw = d.get({k!r})")
        for m in more or ():
            lines.append(f"    raw = raw.get({m!r}) if isinstance(raw, dict) else None")
        lines += ["    if raw is not None and not isinstance(raw, (dict, list)):",
                  f"        used.add({path!r})",
                  "        try:",
                  *_inline(conv, "            ", "conv"),
                  "        except ValueError as exc:",
                  f"            raise NormalizeError(INVALID_FIELD, {path!r}, str(exc)) from None",
                  "        if v is not None:",
                  "            return v"]
    lines.append("    return None")
    exec("\n".join(lines), env)
    fn: Reader = env["read"]
    fn.__qualname__ = f"reader({', '.join(dotted)})"
    return fn


Fill = Callable[[dict[str, Any], set[str], dict[str, Any]], None]


def compile_fill(cols: tuple[Column, ...]) -> Fill:
    """A column table → one straight-line function ``fill(d, used, out)``, generated once (module import): each
    column reads its paths in order (as ``reader``), text read inline. Only non-raising conversions (text, device
    id, boolean): raising ones keep their place in each MMP's order, so errors name the same field as the reference.
    """
    env: dict[str, Any] = dict(_ENV)
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
            lines += _inline(conv, ind + "    ", f"conv{i}")
        lines.append("    if v is not None:")
        lines.append(f"        out[{name!r}] = v")
    exec("\n".join(lines), env)
    fn: Fill = env["fill"]
    return fn


def rest(data: dict[str, Any], used: set[str], replaced: dict[str, Any] | None) -> dict[str, Any]:
    """Every field no column took, nested objects pruned of taken fields (originally-empty objects kept): the
    reference's ``Payload.rest``, descending only into objects under a taken path."""
    d = {**data, **replaced} if replaced else data
    under: set[str] | None = None
    for p in used:
        if "." in p:
            if under is None:
                under = set()
            under.update(_prefixes(p))
    if under is None:  # top-level paths only (most deliveries): a copy less the taken keys, all in C
        out = d.copy()
        pop = out.pop
        for p in used:
            pop(p, None)
        return out
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
