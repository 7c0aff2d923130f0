"""The awkward-input coercions (times, revenue, currency, absent values, booleans, ids)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import fields as F

T = 1718871302118  # 2024-06-20T08:15:02.118Z


@pytest.mark.parametrize("value", [
    "2024-06-20T08:15:02.118Z", "2024-06-20T08:15:02.118", "2024-06-20 08:15:02.118", "2024-06-20T10:15:02.118+02:00",
    "2024-06-20 10:15:02.118+0200", "2024-06-20T03:15:02.118-0500", "2024-06-20 08:15:02.118 UTC",
    "2024-06-20T08:15:02.118000Z", "1718871302118", 1718871302118, Decimal("1718871302.118"), "1718871302.118",
])
def test_time_formats(value: object) -> None:
    assert F.time_ms(value) == T


def test_time_seconds_and_explicit_units() -> None:
    assert F.time_ms("1719230400") == 1719230400000
    assert F.time_ms(1719230400, unit="s") == 1719230400000
    assert F.time_ms("1720425600123", unit="ms") == 1720425600123
    assert F.time_ms("2024-06-20 08:15") == 1718871300000


@pytest.mark.parametrize("value", [None, "", "null", "NULL", " "])
def test_time_absent(value: object) -> None:
    assert F.time_ms(value) is None


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01 00:00:00", "1999-12-31T23:59:59Z", "99999999999999999",
                                   True, "2024-06-20T25:00:00Z", "12",
                                   "2024-06-20"])  # a date without a time of day is not an event time
def test_time_invalid(value: object) -> None:
    with pytest.raises(ValueError):
        F.time_ms(value)


@given(st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30)))
def test_time_round_trips_any_iso_rendering(dt: datetime) -> None:
    dt = dt.replace(microsecond=dt.microsecond // 1000 * 1000, tzinfo=UTC)
    ms = (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert F.time_ms(dt.isoformat()) == ms
    assert F.time_ms(dt.strftime("%Y-%m-%d %H:%M:%S.") + f"{dt.microsecond // 1000:03d}") == ms
    assert F.time_ms(str(ms)) == ms
    assert F.time_ms(dt.astimezone(timezone(timedelta(hours=-7))).isoformat()) == ms


@pytest.mark.parametrize("value, want", [
    ("4.99", "4.99"), (4.99, "4.99"), (Decimal("0.00312"), "0.00312"), ("1200", "1200"), (1200, "1200"),
    (" 7 ", "7"), ("1,5", "1.5"), ("1,234.50", "1234.50"), ("-0.5", "-0.5"), ("1e2", "100"),
])
def test_revenue(value: object, want: str) -> None:
    assert F.decimal(value) == Decimal(want)


@pytest.mark.parametrize("value", ["abc", "4.99 USD", "1e400", "NaN", "Infinity", True, "1e25"])
def test_revenue_invalid(value: object) -> None:
    with pytest.raises(ValueError):
        F.decimal(value)


@given(st.one_of(st.text(max_size=20), st.floats(), st.integers(), st.booleans(), st.none()))
def test_revenue_is_decimal_none_or_value_error(v: object) -> None:
    try:
        d = F.decimal(v)
    except ValueError:
        return
    assert d is None or (isinstance(d, Decimal) and d.is_finite() and d == d.quantize(Decimal("1e-9")))


def test_currency() -> None:
    assert F.currency("usd") == "USD" and F.currency("JPY") == "JPY" and F.currency("") is None
    with pytest.raises(ValueError):
        F.currency("dollars")


@pytest.mark.parametrize("value", [None, "", "null", "NULL", "None", "00000000-0000-0000-0000-000000000000", "0000"])
def test_device_id_absent(value: object) -> None:
    assert F.device_id(value) is None


def test_device_id_lower_cased_and_unicode_text_kept() -> None:
    assert F.device_id("6D92078A-8246-4BA4-AE5B-76104861E7DC") == "6d92078a-8246-4ba4-ae5b-76104861e7dc"
    assert F.text("山田_太郎_01") == "山田_太郎_01"


@pytest.mark.parametrize("value, want", [
    (True, True), ("true", True), ("TRUE", True), ("1", True), (1, True), ("false", False), ("0", False), (0, False),
    (False, False), ("null", None), ("", None), ("maybe", None), (2, None)])
def test_booleans(value: object, want: bool | None) -> None:
    assert F.boolean(value) is want


def test_large_ids_stay_exact() -> None:
    body = F.loads(b'{"id": 1339170046128847021, "r": 4.99}')
    assert F.text(body["id"]) == "1339170046128847021"
    assert body["r"] == Decimal("4.99")
