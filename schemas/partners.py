"""Canonical ad partners: what each MMP calls a network (AppsFlyer ``googleadwords_int``, Adjust ``Google Ads UAC``,
Linkrunner ``GOOGLE``…) → one partner id and display name (``google_ads``, "Google Ads").

Values are matched on a normalized *key* — ASCII letters lower-cased, every run of other characters one ``_``,
outer ``_`` trimmed — so ``Facebook Ads``, ``facebook-ads`` and ``FACEBOOK_ADS`` are one key. The warehouse computes
the same key in SQL (:data:`SQL_KEY`; a property test holds the two equal), joins the ``partner_map`` table loaded from
this mapping, and so a correction re-maps history by rebuilding the rollups, never by rewriting events. A value no
row maps keeps its own key as partner id (and is listed by the "unmapped partners" query), so nothing is lumped
together or lost. The mapping is ``schemas/partners.csv`` (one row per raw value, with the evidence it rests on)
plus ``reporting.partners`` in settings, which may add values or override the file.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from attrib.errors import ConfigurationError

FILE = Path(__file__).resolve().parent / "partners.csv"
COLUMNS = ("raw", "partner_id", "partner_name", "mmps", "evidence", "source")
EVIDENCE = frozenset({"sample", "doc", "convention", "settings"})
_ID = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
_NON_KEY = re.compile(r"[^a-z0-9]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# The same key in ClickHouse SQL ({v} = a Nullable(String) expression). lower() is ASCII-only there, as
# _ASCII_LOWER here; a value with no ASCII letter or digit (e.g. "百度") keys on the hex of its first 8 bytes.
SQL_KEY = ("if(ifNull({v}, '') = '', '', if(trim(BOTH '_' FROM replaceRegexpAll(lower({v}), '[^a-z0-9]+', '_')) = '', "
           "concat('u_', substring(lower(hex({v})), 1, 16)), "
           "trim(BOTH '_' FROM replaceRegexpAll(lower({v}), '[^a-z0-9]+', '_'))))")


def key(raw: str | None) -> str:
    """The normalized key of a raw partner value ('' for none)."""
    if not raw:
        return ""
    k = _NON_KEY.sub("_", raw.translate(_ASCII_LOWER)).strip("_")
    return k or "u_" + raw.encode("utf-8").hex()[:16]


@dataclass(frozen=True)
class Partner:
    id: str
    name: str


@dataclass(frozen=True)
class Row:
    """One mapping row: the raw value as an MMP sends it and where that is documented or observed."""

    raw: str
    partner: Partner
    mmps: str = "all"
    evidence: str = "settings"
    source: str = ""

    @property
    def key(self) -> str:
        return key(self.raw)


class PartnerMap:
    """key → partner, built from rows; later rows (settings) override earlier ones (the file)."""

    def __init__(self, rows: Iterable[Row]):
        self.rows: list[Row] = []
        self.by_key: dict[str, Row] = {}
        names: dict[str, str] = {}
        for r in rows:
            if not _ID.match(r.partner.id):
                raise ConfigurationError(f"partner id {r.partner.id!r} (for {r.raw!r}) must be snake_case [a-z0-9_]")
            if not r.key:
                raise ConfigurationError(f"partner value {r.raw!r} has no key")
            if names.setdefault(r.partner.id, r.partner.name) != r.partner.name and r.evidence != "settings":
                raise ConfigurationError(f"partner {r.partner.id!r} has two names: {names[r.partner.id]!r} and "
                                         f"{r.partner.name!r} ({r.raw!r})")
            old = self.by_key.get(r.key)
            if old is not None and old.partner.id != r.partner.id and r.evidence != "settings":
                raise ConfigurationError(f"{r.raw!r} and {old.raw!r} are the same key {r.key!r} but map to "
                                         f"{r.partner.id!r} and {old.partner.id!r}")
            self.by_key[r.key] = r
            self.rows.append(r)

    def resolve(self, raw: str | None) -> tuple[Partner | None, bool]:
        """(partner, mapped): None for no value; an unmapped value is its own partner (key, raw as name)."""
        k = key(raw)
        if not k:
            return None, True
        hit = self.by_key.get(k)
        if hit is not None:
            return hit.partner, True
        return Partner(k, str(raw).strip()), False

    def table(self) -> list[tuple[str, str, str, str, str]]:
        """Rows of the warehouse's ``partner_map``: (key, partner_id, partner_name, raw, source), one per key."""
        return sorted((k, r.partner.id, r.partner.name, r.raw, f"{r.evidence}: {r.source}".rstrip(": "))
                      for k, r in self.by_key.items())


def read(path: Path = FILE) -> list[Row]:
    """The mapping file's rows; a bad row is an error naming its line."""
    rows = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ConfigurationError(f"{path}: header must be {','.join(COLUMNS)}")
        for rec in reader:
            line = reader.line_num
            if None in rec or any(rec[c] is None for c in COLUMNS):
                raise ConfigurationError(f"{path}:{line}: expected {len(COLUMNS)} columns")
            raw, pid, name = rec["raw"].strip(), rec["partner_id"].strip(), rec["partner_name"].strip()
            if not raw or not pid or not name:
                raise ConfigurationError(f"{path}:{line}: raw, partner_id and partner_name are required")
            if rec["evidence"] not in EVIDENCE - {"settings"}:
                raise ConfigurationError(f"{path}:{line}: evidence must be one of sample, doc, convention")
            if not rec["source"].strip():
                raise ConfigurationError(f"{path}:{line}: every row names its source")
            rows.append(Row(raw, Partner(pid, name), rec["mmps"].strip() or "all", rec["evidence"],
                            rec["source"].strip()))
    return rows


def from_settings(extra: Mapping[str, str], names: Mapping[str, str], known: Iterable[Row]) -> list[Row]:
    """``reporting.partners`` (raw value → partner id) as rows; a new id takes its name from
    ``reporting.partner_names``, a known one keeps its display name."""
    have = {r.partner.id: r.partner.name for r in known}
    out = []
    for raw, pid in extra.items():
        name = names.get(pid) or have.get(pid)
        if not name:
            raise ConfigurationError(f"reporting.partners[{raw!r}]: partner {pid!r} is new; give it a display name "
                                     f"in reporting.partner_names")
        out.append(Row(raw, Partner(pid, name), "all", "settings", "reporting.partners"))
    return out


def load(extra: Mapping[str, str] | None = None, names: Mapping[str, str] | None = None,
         path: Path = FILE) -> PartnerMap:
    base = read(path)
    return PartnerMap([*base, *from_settings(extra or {}, names or {}, base)])
