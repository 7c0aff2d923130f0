"""FX reference rates: parsing the two accepted files and deriving daily conversion factors. Pure; no I/O.

Files (format detected from the header):
- ECB reference rates, as published (``eurofxref-hist.csv`` / ``eurofxref.csv``): ``Date,USD,JPY,…`` one row per
  working day, 1 EUR = value units of each currency, ``N/A`` where a currency was not quoted;
- plain ``date,currency,rate``: 1 unit of a base currency (given by the caller; default the reporting currency) =
  ``rate`` units of ``currency``.

Factors: revenue in currency C on day D times factor = revenue in the reporting currency R. The rate used is the
one published on D, or — weekends and holidays have none — the latest one at most ``max_age_days`` before D; cross
rates go through a base both currencies are quoted in (EUR for the ECB file). No such rate = no factor: the caller
flags that revenue instead of guessing.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from attrib.errors import InputError

_CODE = re.compile(r"^[A-Z]{3}$")
_SCALE = Decimal("1e-12")  # fx_daily.factor is Decimal(38, 12)
_DATE_FORMATS = ("%Y-%m-%d", "%d %B %Y")  # hist file / daily file


class FxFileError(InputError):
    pass


@dataclass(frozen=True)
class Rate:
    day: date
    base: str
    currency: str
    rate: Decimal  # 1 base = rate currency


@dataclass(frozen=True)
class Factor:
    day: date
    currency: str
    factor: Decimal
    rate_day: date


def _day(text: str, where: str) -> date:
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    raise FxFileError(f"{where}: {text.strip()!r} is not a date (YYYY-MM-DD)")


def _rate(text: str, where: str) -> Decimal:
    try:
        v = Decimal(text.strip())
    except InvalidOperation:
        raise FxFileError(f"{where}: rate {text.strip()!r} is not a number") from None
    if not v.is_finite() or v <= 0:
        raise FxFileError(f"{where}: rate {text.strip()!r} must be a positive number")
    return v


def _code(text: str, where: str) -> str:
    c = text.strip().upper()
    if not _CODE.match(c):
        raise FxFileError(f"{where}: {text.strip()!r} is not an ISO-4217 currency code")
    return c


def parse(text: str, name: str, base: str = "USD") -> list[Rate]:
    """Rates of an ECB or plain file; any bad row is an error naming ``name:line``. ``base`` is the plain file's."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows or not rows[0]:
        raise FxFileError(f"{name}: empty file")
    header = [h.strip() for h in rows[0]]
    if [h.lower() for h in header] == ["date", "currency", "rate"]:
        out = _plain(rows, name, _code(base, "base currency"))
    elif header[0].lower() == "date" and len(header) > 1:
        out = _ecb(rows, header, name)
    else:
        raise FxFileError(f"{name}:1: expected an ECB header (Date,USD,JPY,…) or date,currency,rate")
    seen: dict[tuple[date, str, str], tuple[Decimal, int]] = {}
    for line, r in out:
        prev = seen.setdefault((r.day, r.base, r.currency), (r.rate, line))
        if prev[0] != r.rate:
            raise FxFileError(f"{name}:{line}: {r.currency} on {r.day} is also {prev[0]} (line {prev[1]})")
    if not out:
        raise FxFileError(f"{name}: no rates")
    return [r for _, r in out]


def _plain(rows: list[list[str]], name: str, base: str) -> list[tuple[int, Rate]]:
    out = []
    for i, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        where = f"{name}:{i}"
        if len(row) != 3:
            raise FxFileError(f"{where}: expected date,currency,rate, got {len(row)} fields")
        out.append((i, Rate(_day(row[0], where), base, _code(row[1], where), _rate(row[2], where))))
    return out


def _ecb(rows: list[list[str]], header: list[str], name: str) -> list[tuple[int, Rate]]:
    codes = [(j, _code(h, f"{name}:1")) for j, h in enumerate(header) if j > 0 and h]  # trailing comma → ''
    out = []
    for i, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        where = f"{name}:{i}"
        if len(row) < len(header) - (header[-1] == ""):
            raise FxFileError(f"{where}: {len(row)} fields, the header has {len(header)}")
        day = _day(row[0], where)
        for j, code in codes:
            cell = row[j].strip() if j < len(row) else ""
            if cell in ("", "N/A"):  # the ECB marks currencies it did not quote that day
                continue
            out.append((i, Rate(day, "EUR", code, _rate(cell, f"{where} ({code})"))))
    return out


def factors(rates: Iterable[Rate], reporting: str, max_age_days: int) -> list[Factor]:
    """Daily factors to ``reporting`` for every currency and every day from the first published day to the last
    one plus ``max_age_days`` (where a rate that recent exists)."""
    quotes: dict[date, dict[str, dict[str, Decimal]]] = defaultdict(lambda: defaultdict(dict))
    for r in rates:
        q = quotes[r.day][r.base]
        q[r.currency] = r.rate
        q[r.base] = Decimal(1)
    if not quotes:
        return []
    currencies = sorted({c for by_base in quotes.values() for q in by_base.values() for c in q} - {reporting})
    first, last = min(quotes), max(quotes) + timedelta(days=max_age_days)
    out = []
    d = first
    while d <= last:
        for c in currencies:
            f = _factor(quotes, d, c, reporting, max_age_days)
            if f is not None:
                out.append(Factor(d, c, *f))
        d += timedelta(days=1)
    return out


def _factor(quotes: dict[date, dict[str, dict[str, Decimal]]], d: date, c: str, reporting: str,
            max_age_days: int) -> tuple[Decimal, date] | None:
    for age in range(max_age_days + 1):
        day = d - timedelta(days=age)
        by_base = quotes.get(day)
        if not by_base:
            continue
        # a direct quote (base = C or R) first, then cross rates through other bases in a fixed order
        for base in sorted(by_base, key=lambda b: (b not in (c, reporting), b)):
            q = by_base[base]
            if c in q and reporting in q:
                return (q[reporting] / q[c]).quantize(_SCALE), day
    return None


def convert(amount: Decimal, factor: Decimal) -> Decimal:
    """What the warehouse computes: toDecimal128(amount * factor, 6), truncated toward zero."""
    return (amount * factor).quantize(Decimal("1e-6"), rounding="ROUND_DOWN")
