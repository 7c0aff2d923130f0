"""Destination filters (Branch's model): key path conditions AND-ed, an event allowlist.

A condition's value is compared as text (``true``, ``12.5``, ``Paris``); ``*`` means "present" (not absent, null or
empty); a list means any of its values. The allowlist matches the event's name or type, case-insensitively.
"First time per user" is state, not a pure filter: see :mod:`sinks.route.firsttime`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sinks.route.view import MISSING, resolve, text

PRESENT = "*"


@dataclass(frozen=True)
class Filter:
    conditions: tuple[tuple[str, frozenset[str] | None], ...] = ()  # None = present
    events: frozenset[str] = frozenset()

    @classmethod
    def of(cls, conditions: Mapping[str, Any], events: Iterable[str] = ()) -> Filter:
        conds: list[tuple[str, frozenset[str] | None]] = []
        for path, want in conditions.items():
            if not path or any(not p for p in path.split(".")):
                raise ValueError(f"filter key path {path!r} is not a dotted path")
            if want == PRESENT:
                conds.append((path, None))
            elif isinstance(want, (list, tuple, set, frozenset)):
                conds.append((path, frozenset(text(w) for w in want)))
            else:
                conds.append((path, frozenset({text(want)})))
        return cls(tuple(conds), frozenset(e.casefold() for e in events))

    def matches(self, view: Mapping[str, Any]) -> bool:
        if self.events:
            names = {str(view.get("event_name") or "").casefold(), str(view.get("event_type") or "").casefold()}
            if not names & self.events:
                return False
        for path, want in self.conditions:
            got = resolve(dict(view), path)
            if got is MISSING or got == "":
                return False
            if want is not None and text(got) not in want:
                return False
        return True
