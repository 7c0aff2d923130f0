"""FX rates: both file formats, bad rows named by line, daily factors (weekends, cross rates, staleness), and the
conversion the warehouse does in the rollups — a missing rate is flagged and counted, never dropped or guessed."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops.fx import rates
from ops.fx.command import SAMPLE, load
from sinks import migrate, pack, rollups, rows
from sinks.clickhouse import connect
from tests.sinks.fixtures import DAY0, event, touch

# An ECB hist file as published: newest first, trailing comma, N/A for currencies not quoted that day.
# 2024-06-21 is a Friday, 2024-06-24 the next Monday; no rows for the weekend.
ECB = """Date,USD,JPY,GBP,CYP,
2024-06-24,1.0730,171.06,0.84550,N/A,
2024-06-21,1.0692,170.41,N/A,N/A,
2024-06-20,1.0715,169.80,0.84430,N/A,
"""
ECB_DAILY = "Date, USD, JPY, \n24 June 2024, 1.0730, 171.06, \n"
PLAIN = "date,currency,rate\n2024-06-22,INR,83.5200\n2024-06-22,CHF,0.8900\n"


def test_ecb_hist_file() -> None:
    rs = rates.parse(ECB, "eurofxref-hist.csv")
    assert len(rs) == 8 and {r.base for r in rs} == {"EUR"}
    assert rates.Rate(date(2024, 6, 21), "EUR", "JPY", Decimal("170.41")) in rs
    assert not any(r.currency in ("CYP",) or (r.currency == "GBP" and r.day == date(2024, 6, 21)) for r in rs)


def test_ecb_daily_file_and_plain_file() -> None:
    assert rates.parse(ECB_DAILY, "eurofxref.csv") == [
        rates.Rate(date(2024, 6, 24), "EUR", "USD", Decimal("1.0730")),
        rates.Rate(date(2024, 6, 24), "EUR", "JPY", Decimal("171.06"))]
    assert rates.parse(PLAIN, "mine.csv", base="USD") == [
        rates.Rate(date(2024, 6, 22), "USD", "INR", Decimal("83.5200")),
        rates.Rate(date(2024, 6, 22), "USD", "CHF", Decimal("0.8900"))]


def test_the_repo_sample_parses() -> None:
    rs = rates.parse(SAMPLE.read_text(), SAMPLE.name)
    assert {"USD", "JPY", "GBP", "INR"} <= {r.currency for r in rs}


@pytest.mark.parametrize(("text", "err"), [
    ("Date,USD,\n2024-06-20,1.07,\n2024-06-21,abc,\n", r"f\.csv:3 \(USD\): rate 'abc' is not a number"),
    ("Date,USD,\n2024-06-20,-1.07,\n", r"f\.csv:2 \(USD\): rate '-1.07' must be a positive number"),
    ("Date,USD,\n2024-13-20,1.07,\n", r"f\.csv:2: '2024-13-20' is not a date"),
    ("Date,US Dollar,\n2024-06-20,1.07,\n", r"f\.csv:1: 'US Dollar' is not an ISO-4217"),
    ("date,currency,rate\n2024-06-20,GBP,0.8\n2024-06-20,GBP\n", r"f\.csv:3: expected date,currency,rate"),
    ("date,currency,rate\n2024-06-20,GBP,0.8\n2024-06-20,gbp,0.9\n", r"f\.csv:3: GBP on 2024-06-20 is also 0\.8"),
    ("when,what\n1,2\n", r"f\.csv:1: expected an ECB header"),
    ("date,currency,rate\n", r"f\.csv: no rates"),
])
def test_bad_rows_are_named_by_line(text: str, err: str) -> None:
    with pytest.raises(rates.FxFileError, match=err):
        rates.parse(text, "f.csv")


def test_weekend_uses_the_last_working_day_and_stale_rates_are_missing() -> None:
    fs = {(f.day, f.currency): f for f in rates.factors(rates.parse(ECB, "e.csv"), "USD", 2)}
    sat, sun = date(2024, 6, 22), date(2024, 6, 23)
    assert fs[(sat, "JPY")].rate_day == fs[(sun, "JPY")].rate_day == date(2024, 6, 21)
    assert fs[(sat, "JPY")].factor == (Decimal("1.0692") / Decimal("170.41")).quantize(Decimal("1e-12"))
    assert fs[(sat, "EUR")].factor == Decimal("1.0692").quantize(Decimal("1e-12"))  # the base itself
    assert (date(2024, 6, 22), "GBP") in fs  # Thursday's GBP is 2 days old on Saturday
    assert (date(2024, 6, 23), "GBP") not in fs  # and 3 days old on Sunday: no rate, not a guess
    assert (date(2024, 6, 27), "JPY") not in fs and (date(2024, 6, 26), "JPY") in fs


@given(st.dictionaries(st.sampled_from(["USD", "JPY", "GBP", "INR", "CHF"]),
                       st.decimals("0.01", "50000", places=4), min_size=2))
def test_cross_rates_through_the_base(quotes: dict[str, Decimal]) -> None:
    day = date(2024, 6, 20)
    rs = [rates.Rate(day, "EUR", c, v) for c, v in quotes.items()]
    for rep in quotes:
        fs = {f.currency: f.factor for f in rates.factors(rs, rep, 0) if f.day == day}
        assert set(fs) == set(quotes) - {rep} | {"EUR"}
        for c, f in fs.items():
            exact = quotes[rep] / (quotes[c] if c != "EUR" else 1)
            assert abs(f - exact) <= Decimal("1e-12")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, chdb_path):
    from attrib.settings import Settings

    s = Settings(var_dir=tmp_path_factory.mktemp("fx"), clickhouse={"path": chdb_path, "database": "fx_x"})
    client = connect(s)
    migrate.migrate(client, s)
    analyst = connect(s, database="fx_x")
    yield client, analyst
    analyst.close()
    client.close()


def _purchases() -> list[dict]:
    ft = touch("u-i", DAY0, "Facebook Ads", "C", "S")
    out = []
    spec = [  # (day offset from Thu 2024-06-20, amount, currency, MMP's own USD figure)
        (0, "1200", "JPY", None), (2, "980", "JPY", None), (2, "4.99", "USD", None), (1, "9.99", "EUR", None),
        (3, "7.49", "GBP", None),  # Sunday: Thursday's GBP is too old, no rate
        (2, "3.00", "CHF", None),  # no CHF rate loaded at all (yet)
        (2, "1500", "JPY", "9.62"),  # AppsFlyer's event_revenue_usd wins over our rate
    ]
    for i, (d, amount, cur, usd) in enumerate(spec):
        e = event(f"p{i}", "u", "app", "purchase", DAY0 + timedelta(days=d, hours=5), ft=ft,
                  revenue=Decimal(amount), currency=cur)
        if usd:
            e["properties"] = f'{{"event_revenue_usd":"{usd}"}}'
        out.append(e)
    return out


def test_conversion_in_the_warehouse_flags_missing_rates(warehouse) -> None:
    client, analyst = warehouse
    evs = _purchases()
    client.insert("fx_x.events", [rows.event_row(e) for e in evs], column_names=rows.EVENT_COLUMNS)
    rollups.refresh(client, "fx_x", {e["event_time"].date() for e in evs})
    # before any rate: only USD and the MMP's USD figure are converted, everything else is flagged
    assert client.query("SELECT sum(purchases_unconverted), sum(revenue_reporting) FROM fx_x.daily_rollups"
                        ).result_rows[0] == (5, Decimal("4.99") + Decimal("9.62"))

    got = load(client, "fx_x", rates.parse(ECB, "eurofxref-hist.csv"), "eurofxref-hist.csv", "USD", 2)
    assert got.rebuilt_days == 4 and got.unconverted == 2
    fs = {(f.day, f.currency): f.factor for f in rates.factors(rates.parse(ECB, "e.csv"), "USD", 2)}
    want: dict = defaultdict(lambda: [Decimal(0), 0])
    for e in evs:
        day, cur, amount = e["event_time"].date(), e["currency"], e["revenue"]
        w = want[day]
        if cur == "USD":
            w[0] += amount
        elif "event_revenue_usd" in e["properties"]:
            w[0] += Decimal("9.62")
        elif (day, cur) in fs:
            w[0] += rates.convert(amount, fs[(day, cur)])
        else:
            w[1] += 1
    got_days = {d: [r, n] for d, r, n in client.query(
        "SELECT day, sum(revenue_reporting), sum(purchases_unconverted) FROM fx_x.daily_rollups GROUP BY day"
    ).result_rows}
    assert got_days == dict(want)
    flagged = {(r[0], r[1]): r[2] for r in analyst.query(pack.load()["unconverted_revenue"]).result_rows}
    assert flagged == {(date(2024, 6, 23), "GBP"): 1, (date(2024, 6, 22), "CHF"): 1}

    # a plain file (base USD) brings Saturday's CHF: that purchase converts, Sunday's GBP stays flagged
    got = load(client, "fx_x", rates.parse(PLAIN, "mine.csv", base="USD"), "mine.csv", "USD", 2)
    assert got.unconverted == 1
    sat = client.query("SELECT sum(revenue_reporting) FROM fx_x.daily_rollups WHERE day = '2024-06-22'"
                       ).result_rows[0][0]
    assert sat == want[date(2024, 6, 22)][0] + rates.convert(Decimal("3.00"), (1 / Decimal("0.8900")).quantize(
        Decimal("1e-12")))
    assert {(r[0], r[1]) for r in analyst.query(pack.load()["unconverted_revenue"]).result_rows} == {
        (date(2024, 6, 23), "GBP")}
    assert rollups.quality(client, "fx_x")[2] == 1
    # per event, the view gives the same conversion and the same flags as the rollups
    view = {d: [r, n] for d, r, n in analyst.query(
        "SELECT toDate(event_time) AS d, sum(ifNull(revenue_reporting, 0)), countIf(revenue_converted = 0) "
        "FROM events_canonical(reporting = 'USD') WHERE event_type = 'purchase' GROUP BY d").result_rows}
    assert view == {d: [r, n] for d, r, n in client.query(
        "SELECT day, sum(revenue_reporting), sum(purchases_unconverted) FROM fx_x.daily_rollups GROUP BY day"
    ).result_rows}
    jpy = analyst.query("SELECT revenue, currency, revenue_reporting, revenue_converted FROM "
                        "events_canonical(reporting = 'USD') WHERE event_id = 'p6'").result_rows
    assert jpy == [(Decimal("1500"), "JPY", Decimal("9.62"), 1)]  # kept as sent, beside the MMP's own USD value
