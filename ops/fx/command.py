"""`attrib fx load FILE`: load FX reference rates into ClickHouse and rebuild the rollups they change.

Steps: parse (any bad row stops the load, naming its line) → ``fx_rates`` (a re-loaded day replaces the old one) →
daily factors for ``reporting.currency`` derived from every rate loaded so far → ``fx_daily`` as a new generation →
rebuild the rollups of the days the new factors cover. Revenue still without a rate stays flagged
(``daily_rollups.purchases_unconverted``, the pack's ``unconverted_revenue``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from clickhouse_connect.driver.client import Client

from attrib.settings import Settings
from ops.fx import rates

HELP = "load FX reference rates (ECB eurofxref CSV or date,currency,rate) and rebuild the affected rollups"
SAMPLE = Path(__file__).resolve().parent / "sample-eurofxref.csv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    ld = sub.add_parser("load", help="load a rates file")
    ld.add_argument("file", type=Path, help="eurofxref-hist.csv / eurofxref.csv, or a date,currency,rate CSV")
    ld.add_argument("--base", help="base currency of a date,currency,rate file (1 base = rate currency); "
                    "default reporting.currency")
    ld.add_argument("--no-rebuild", action="store_true", help="only mark the affected days for the sink to rebuild")


@dataclass(frozen=True)
class Loaded:
    rates: int
    currencies: list[str]
    first: date
    last: date
    factors: int
    generation: int
    rebuilt_days: int
    unconverted: int


def load(client: Client, database: str, rs: list[rates.Rate], source: str, reporting: str, max_age_days: int,
         rebuild: bool = True) -> Loaded:
    client.insert(f"{database}.fx_rates", [(r.day, r.base, r.currency, r.rate, source) for r in rs],
                  column_names=["day", "base", "currency", "rate", "source"], settings={"async_insert": 0})
    every = [rates.Rate(d, b, c, r) for d, b, c, r in client.query(
        f"SELECT day, base, currency, rate FROM {database}.fx_rates FINAL").result_rows]
    fs = rates.factors(every, reporting, max_age_days)
    gen = time.time_ns() // 1000
    client.insert(f"{database}.fx_daily", [(reporting, gen, f.day, f.currency, f.factor, f.rate_day) for f in fs],
                  column_names=["reporting", "generation", "day", "currency", "factor", "rate_day"],
                  settings={"async_insert": 0})
    client.command(f"ALTER TABLE {database}.fx_daily DELETE WHERE reporting = {{r:String}} AND generation < {gen}",
                   parameters={"r": reporting})
    lo, hi = min(r.day for r in rs), max(r.day for r in rs) + timedelta(days=max_age_days)
    days = [d for (d,) in client.query(
        f"SELECT DISTINCT day FROM {database}.daily_rollups WHERE day BETWEEN {{lo:Date}} AND {{hi:Date}}",
        parameters={"lo": lo, "hi": hi}).result_rows]
    if days and rebuild:
        from sinks import rollups

        rollups.refresh(client, database, days, reporting=reporting)
    elif days:
        client.insert(f"{database}.rollup_dirty_days", [[d] for d in days], column_names=["day"],
                      settings={"async_insert": 0})
    left = client.query(f"SELECT sum(purchases_unconverted) FROM {database}.daily_rollups").result_rows[0][0]
    return Loaded(len(rs), sorted({r.currency for r in rs}), lo, max(r.day for r in rs), len(fs), gen,
                  len(days) if rebuild else 0, int(left or 0))


def main(args: argparse.Namespace, settings: Settings) -> int:
    from attrib.errors import DependencyUnavailable
    from ops.warehouse import open_for_writes
    from sinks.migrate import migrate

    path: Path = args.file
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"attrib fx load: cannot read {path}: {exc.strerror}")
        return 2
    try:
        rs = rates.parse(text, path.name, base=args.base or settings.reporting.currency)
    except rates.FxFileError as exc:
        print(f"attrib fx load: {exc}")
        return 2
    try:
        client = open_for_writes(settings)
    except DependencyUnavailable as exc:
        print(f"attrib fx load: {exc}")
        return 1
    try:
        migrate(client, settings)
        got = load(client, settings.clickhouse.database, rs, path.name, settings.reporting.currency,
                   settings.reporting.fx_max_age_days, rebuild=not args.no_rebuild)
    finally:
        client.close()
    print(f"loaded {got.rates:,} rates ({len(got.currencies)} currencies, {got.first} .. {got.last}) from {path.name}; "
          f"{got.factors:,} daily factors to {settings.reporting.currency}; rollups rebuilt for {got.rebuilt_days} "
          f"days; purchases still without a rate: {got.unconverted:,}")
    return 0
