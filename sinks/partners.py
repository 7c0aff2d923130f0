"""The warehouse's copy of the partner mapping (``partner_map``) and what a change to it does to history.

:func:`sync` runs with every ``attrib migrate`` (so every sink start) and ``attrib partners reload``: when the mapping
(schemas/partners.csv + ``reporting.partners``) differs from the newest generation in the warehouse, the whole mapping
is inserted as a new generation — one block, so readers see the old mapping or the new one — and the days whose
rollups hold a re-mapped media source are marked for a rebuild. Every change is logged and returned, so a
correction re-maps history visibly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from clickhouse_connect.driver.client import Client

from attrib.settings import Settings
from schemas import partners

log = logging.getLogger("attrib.sink.partners")
_COLUMNS = ("generation", "key", "partner_id", "partner_name", "raw", "source")


@dataclass(frozen=True)
class Change:
    key: str
    old: tuple[str, str] | None  # (partner_id, partner_name); None = was not mapped
    new: tuple[str, str] | None  # None = no longer mapped


@dataclass(frozen=True)
class Synced:
    generation: int | None  # None = the warehouse already had this mapping
    changes: list[Change]
    dirty_days: list[date]


def mapping(settings: Settings) -> partners.PartnerMap:
    return partners.load(settings.reporting.partners, settings.reporting.partner_names)


def current(client: Client, database: str) -> dict[str, tuple[str, str]]:
    rows = client.query(f"SELECT key, partner_id, partner_name FROM {database}.partner_map "
                        f"WHERE generation = (SELECT max(generation) FROM {database}.partner_map)").result_rows
    return {k: (pid, name) for k, pid, name in rows}


def diff(old: dict[str, tuple[str, str]], new: dict[str, tuple[str, str]]) -> list[Change]:
    return [Change(k, old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]


def affected_days(client: Client, database: str, keys: Iterable[str]) -> list[date]:
    """Days whose rollups hold a media source with one of ``keys`` (the rollups are small: this reads no events)."""
    keys = sorted(set(keys))
    if not keys:
        return []
    expr = partners.SQL_KEY.replace("{v}", "media_source")
    rows = client.query(f"SELECT DISTINCT day FROM {database}.daily_rollups WHERE {expr} IN {{keys:Array(String)}} "
                        "ORDER BY day", parameters={"keys": keys}).result_rows
    return [d for (d,) in rows]


def sync(client: Client, database: str, pm: partners.PartnerMap) -> Synced:
    want = {k: (pid, name) for k, pid, name, _, _ in pm.table()}
    had = current(client, database)
    changes = diff(had, want)
    if not changes:
        return Synced(None, [], [])
    gen = time.time_ns() // 1000
    client.insert(f"{database}.partner_map", [(gen, *r) for r in pm.table()], column_names=list(_COLUMNS),
                  settings={"async_insert": 0})
    client.command(f"ALTER TABLE {database}.partner_map DELETE WHERE generation < {gen}")
    days = affected_days(client, database, [c.key for c in changes])
    if days:
        client.insert(f"{database}.rollup_dirty_days", [[d] for d in days], column_names=["day"],
                      settings={"async_insert": 0})
    say = log.warning if had else log.info  # a first load re-maps nothing that was mapped before
    say("partner mapping changed: rollups of affected days will be rebuilt", extra={"fields": {
        "changed_keys": len(changes), "days": len(days), "generation": gen,
        "sample": [f"{c.key}: {c.old and c.old[0]} -> {c.new and c.new[0]}" for c in changes[:10]]}})
    return Synced(gen, changes, days)
