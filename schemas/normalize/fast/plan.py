"""The production normalizer's field conversions (schemas/normalize/fast/gen.py generates the code that calls them):
``schemas.fields``' coercions with their commonest inputs read directly, every other input and every error through
the reference's own function — so values and error messages are the reference's."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import product
from typing import Any

import msgspec

from schemas import canonical
from schemas import fields as F

Conv = Callable[[Any], Any]


def _time(v: Any) -> int | None:
    """``F.time_ms`` with its commonest inputs in integer arithmetic — epoch seconds or ms as an int or an ASCII digit
    string, and UTC ``YYYY-MM-DD[ T]HH:MM:SS[.fff…][Z]``; every other shape, and every error, through ``F.time_ms``."""
    cls = v.__class__
    if cls is int:
        ms = v * 1000 if v < 100_000_000_000 else v
        if _MIN_MS <= ms < _MAX_MS:
            return ms
    elif cls is str and v.isascii():
        if len(v) >= 19:  # UTC YYYY-MM-DD[ T]HH:MM:SS[.f…][Z] from the caches
            minute = _MINUTES.get(v[:17])
            if minute is None:
                minute = _minute_ms(v[:17])
            sec = _SECONDS.get(v[17:19])  # None: not two ASCII digits below 60
            if minute is not None and sec is not None:
                frac = _FRACTIONS.get(v[19:])
                if frac is None:
                    frac = _fraction_ms(v[19:])
                if frac is not None:
                    ms = minute + sec + frac
                    if _MIN_MS <= ms < _MAX_MS:
                        return ms
        elif v.isdigit():
            n = int(v)
            ms = n * 1000 if n < 100_000_000_000 else n
            if _MIN_MS <= ms < _MAX_MS:
                return ms
    return F.time_ms(v)


_MIN_MS, _MAX_MS = F.MIN_MS, F.MAX_MS
# Epoch ms of each ``YYYY-MM-DD HH:MM:`` already read (a stream's times share minutes): one slice and one dict read
# per time; a new minute is read through the day and clock caches below.
_MINUTES: dict[str, int] = {}


def _minute_ms(key: str) -> int | None:
    day = _DAYS.get(key[:11])
    if day is None:
        day = _day_ms(key[:11])
        if day is None:
            return None
    clock = _CLOCKS.get(key[11:17])
    if clock is None:
        clock = _clock_ms(key[11:17])
        if clock is None:
            return None
    if len(_MINUTES) >= 4096:  # ~3 days of distinct minutes; a flood of them only costs a recompute
        _MINUTES.clear()
    ms = _MINUTES[key] = day + clock
    return ms


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
# Every string s with ``len(s) <= _ABSENT_MAX and s.lower() in F.ABSENT``: the null words in every ASCII letter case
# (no other character lower-cases to a letter of theirs: tests/schemas/test_normalize_agreement.py checks all of
# Unicode), so ``F.text``'s null-word test is one set lookup.
ABSENT_CASES = frozenset("".join(cs) for w in F.ABSENT for cs in product(*({c.lower(), c.upper()} for c in w)))


def event_type(name: str, options: dict[str, Any], defaults: dict[str, str] | None, cache: dict[str, str]) -> str:
    """``canonical.event_type``, remembered in the source's ``cache`` when the source maps no names itself (event
    names are few and repeat on every delivery; the generated code reads the cache before calling this)."""
    if options.get("event_types"):
        return canonical.event_type(name, options, defaults)
    hit = canonical.event_type(name, options, defaults)
    if len(cache) >= 4096:  # names are the MMPs' event names; a flood of distinct ones only costs a recompute
        cache.clear()
    cache[name] = hit
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
