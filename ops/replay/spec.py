"""What a replay is asked to do (pure): time bounds, filters, target, and the replay id derived from them, so that
running the same command again resumes the same replay."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import asdict, dataclass

from attrib.errors import InputError

_REL = re.compile(r"^-?(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class SpecError(InputError, ValueError):
    """A replay range or target the user wrote that cannot be parsed."""


def parse_time(text: str, now_ms: int) -> int:
    """ISO-8601 (``2025-11-30T10:00:00Z``, a date = midnight UTC; naive means UTC), epoch ms, ``now``, or an age
    (``2h``, ``-90m``, ``7d`` = that long ago). Returns epoch milliseconds."""
    t = text.strip()
    if t == "now":
        return now_ms
    if m := _REL.match(t):
        return now_ms - int(float(m[1]) * _UNITS[m[2]] * 1000)
    if t.isdigit():
        return int(t)
    try:
        d = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise SpecError(f"cannot read time {text!r}: use ISO-8601 (2025-11-30T10:00:00Z), epoch ms, now, or "
                        "2h/30m/7d") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return int(d.timestamp() * 1000)


@dataclass(frozen=True)
class Target:
    kind: str  # topic | clickhouse | live
    name: str = ""

    @classmethod
    def parse(cls, text: str) -> Target:
        kind, _, name = text.partition(":")
        if kind == "live" and not name:
            return cls("live")
        if kind == "topic" and re.fullmatch(r"[A-Za-z0-9._-]{1,200}", name):
            return cls("topic", name)
        if kind == "clickhouse" and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,100}", name):
            return cls("clickhouse", name)
        raise SpecError(f"--into {text!r}: expected topic:<new topic>, clickhouse:<new database> or live")

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}" if self.name else self.kind


@dataclass(frozen=True)
class RangeSpec:
    since_ms: int
    until_ms: int
    target: Target
    source: str | None = None
    event_type: str | None = None
    # --since/--until as typed. An age ("2h") resolves to a later time on every run, so the id is taken from the
    # text: the same command resumes the range planned by its first run (kept in the checkpoint).
    asked: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if self.until_ms <= self.since_ms:
            raise SpecError("--until must be after --since")

    @property
    def replay_id(self) -> str:
        d = {**asdict(self), "target": str(self.target)}
        if self.asked is not None:
            d.pop("since_ms"), d.pop("until_ms")
        else:
            d.pop("asked")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]
