"""Small pure coercions shared by the user key and the normalizers.

MMPs send the same value many ways: ``""``, ``"null"`` and JSON ``null`` all mean absent; booleans arrive as
``true``/``"true"``/``1``/``"1"``; ids larger than 2^53 arrive as numbers. Everything here returns ``None`` for "absent"
instead of raising, except the parsers at the bottom that raise ``ValueError`` for values that are present but wrong.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

ABSENT = frozenset({"", "null", "none", "nil", "undefined", "(null)"})
_ZERO_ID = re.compile(r"^[0\-]+$")
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


_DECODER = json.JSONDecoder(parse_float=Decimal)  # one instance: json.loads(..., parse_float=) builds one per call


def loads(body: bytes | str) -> Any:
    """JSON with exact numbers: big ints stay ints (Python ints are unbounded) and decimals never pass through float."""
    if isinstance(body, (bytes, bytearray)):  # as json.loads does
        body = body.decode(json.detect_encoding(body), "surrogatepass")
    elif not isinstance(body, str):
        return json.loads(body, parse_float=Decimal)  # its TypeError
    if body.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", body, 0)
    return _DECODER.decode(body)


def query_dict(query_string: str) -> dict[str, str]:
    """Decoded query parameters (UTF-8, ``+`` = space); first occurrence of a repeated name wins."""
    out: dict[str, str] = {}
    for k, v in parse_qsl(query_string or "", keep_blank_values=True, errors="replace"):
        out.setdefault(k, v)
    return out


_ABSENT_MAX = max(map(len, ABSENT))


def text(v: Any) -> str | None:
    """A present value as a string (numbers exactly, unicode kept), or None for null/empty/"null"."""
    if type(v) is str:  # the common case, kept cheap: lower() only for strings short enough to be a null word
        s = v.strip()
        return None if len(s) <= _ABSENT_MAX and s.lower() in ABSENT else s
    if v is None or isinstance(v, (dict, list)):
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    s = format(v, "f") if isinstance(v, Decimal) else str(v)
    s = s.strip()
    return None if s.lower() in ABSENT else s


def device_id(v: Any) -> str | None:
    """A device id lower-cased; all-zero ids (limit-ad-tracking IDFA/GAID) count as absent."""
    s = text(v)
    if s is None or _ZERO_ID.match(s):
        return None
    return s.lower()


def boolean(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, Decimal)) and not isinstance(v, bool):
        return None if v not in (0, 1) else bool(v)
    s = text(v)
    if s is None:
        return None
    s = s.lower()
    return True if s in _TRUE else False if s in _FALSE else None


def first(d: dict[str, Any], *keys: str) -> str | None:
    """The first present value among ``keys`` as text."""
    for k in keys:
        s = text(d.get(k))
        if s is not None:
            return s
    return None


_PARTS: dict[str, list[str]] = {}  # dotted path -> its steps (paths are the normalizers' constants: a small set)


def path_parts(path: str) -> list[str]:
    parts = _PARTS.get(path)
    if parts is None:
        parts = path.split(".")
        if len(_PARTS) < 4096:
            _PARTS[path] = parts
    return parts


def get_path(d: Any, path: str) -> Any:
    """``a.b.c`` lookup through nested dicts; None when any step is missing."""
    if "." not in path:  # the common case, kept cheap
        return d.get(path) if isinstance(d, dict) else None
    for part in path_parts(path):
        if not isinstance(d, dict):
            return None
        d = d.get(part)
    return d


def json_in_string(v: Any) -> Any:
    """Decode JSON carried inside a string (AppsFlyer ``event_value``, Adjust ``partner_parameters``); else as is."""
    if isinstance(v, str) and v[:1] in ("{", "["):
        try:
            return loads(v)
        except ValueError:
            return v
    return v


# --- parsers: raise ValueError on a present-but-invalid value --------------------------------------------------------

_EPOCH = re.compile(r"^-?\d+(\.\d+)?$")
_SPACE_TS = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(:\d{2}(\.\d+)?)?)\s*(Z|UTC|[+-]\d{2}:?\d{2})?$", re.I)
_EPOCH0 = datetime(1970, 1, 1, tzinfo=UTC)
MIN_MS = 946_684_800_000  # 2000-01-01: anything earlier is a unit or format mistake
MAX_MS = 4_102_444_800_000  # 2100-01-01


def time_ms(v: Any, unit: str | None = None) -> int | None:
    """Event time in UTC epoch milliseconds.

    Accepts epoch seconds or milliseconds (number or digit string; by magnitude unless ``unit`` is "s"/"ms"), ISO 8601
    with or without zone, and ``YYYY-MM-DD HH:MM:SS[.sss][±hhmm]``. A value without a zone is UTC (AppsFlyer's
    documented format). Returns None when absent; raises ValueError when present but unparseable or out of range.
    """
    if isinstance(v, bool):
        raise ValueError(f"not a time: {v!r}")
    s = text(v)
    if s is None:
        return None
    if _EPOCH.match(s):
        n = Decimal(s)
        if unit == "s" or (unit is None and abs(n) < 100_000_000_000):  # < 1e11: seconds (until year 5138)
            n *= 1000
        ms = int(n)
    else:
        m = _SPACE_TS.match(s)
        if not m:
            raise ValueError(f"not a time: {s[:40]!r}")
        date, clock, _, frac, zone = m.groups()
        iso = f"{date}T{clock if clock.count(':') == 2 else clock + ':00'}"
        if frac:  # any number of fraction digits: keep 6 (microseconds)
            iso = iso[: -len(frac)] + "." + (frac[1:] + "000000")[:6]
        z = (zone or "Z").upper()
        if z in ("Z", "UTC"):
            z = "+00:00"
        elif ":" not in z:
            z = z[:3] + ":" + z[3:]
        try:
            dt = datetime.fromisoformat(iso + z)
        except ValueError:
            raise ValueError(f"not a time: {s[:40]!r}") from None
        ms = (dt - _EPOCH0) // timedelta(milliseconds=1)  # exact integer arithmetic, no float
    if not MIN_MS <= ms < MAX_MS:
        raise ValueError(f"time out of range (2000..2100): {s[:40]!r}")
    return ms


_NUM = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_REV_MAX = Decimal("1e18")  # keeps 9 decimals inside the default 28-digit context; larger is garbage anyway


def decimal(v: Any) -> Decimal | None:
    """Revenue as an exact Decimal quantised to 9 places; number or numeric string. None when absent."""
    if isinstance(v, bool):
        raise ValueError(f"not a number: {v!r}")
    if isinstance(v, float):
        v = repr(v)
    s = text(v)
    if s is None:
        return None
    s = s.replace(",", "") if s.count(",") and s.count(".") else s.replace(",", ".")
    if not _NUM.match(s):
        raise ValueError(f"not a number: {s[:40]!r}")
    try:
        d = Decimal(s)
    except InvalidOperation:
        raise ValueError(f"not a number: {s[:40]!r}") from None
    if not d.is_finite() or abs(d) >= _REV_MAX:
        raise ValueError(f"number out of range: {s[:40]!r}")
    return d.quantize(Decimal("1e-9"))


_CURRENCY = re.compile(r"^[A-Za-z]{3}$")


def currency(v: Any) -> str | None:
    s = text(v)
    if s is None:
        return None
    if not _CURRENCY.match(s):
        raise ValueError(f"not an ISO-4217 code: {s[:20]!r}")
    return s.upper()
