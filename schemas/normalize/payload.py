"""Read a parsed delivery field by field, remembering what a canonical column took; the rest is ``properties``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from schemas import fields as F
from schemas.errors import INVALID_FIELD, NormalizeError

_parts = F.path_parts


class Payload:
    """A parsed delivery object. Paths are dotted (``user_data.idfv``); lookups try each path in order."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self._used: set[str] = set()
        self._replaced: dict[str, Any] = {}

    def peek(self, path: str) -> Any:
        return F.get_path(self.data, path)

    def obj(self, path: str) -> dict[str, Any]:
        """A nested object (not consumed: its own fields are read one by one), or {}."""
        v = self.peek(path)
        return v if isinstance(v, dict) else {}

    def _first(self, paths: tuple[str, ...], conv: Any) -> Any:
        data = self.data
        for p in paths:  # the hot path of every normalizer: get_path inlined
            if "." not in p:
                raw = data.get(p)
            else:
                parts = _parts(p)
                if len(parts) == 2:  # "object.field": most dotted paths
                    raw = data.get(parts[0])
                    raw = raw.get(parts[1]) if isinstance(raw, dict) else None
                else:
                    raw = data
                    for part in parts:
                        raw = raw.get(part) if isinstance(raw, dict) else None
            if raw is None or isinstance(raw, (dict, list)):  # an object where a value belongs stays in properties
                continue
            self._used.add(p)
            try:
                v = conv(raw)
            except ValueError as exc:
                raise NormalizeError(INVALID_FIELD, p, str(exc)) from None
            if v is not None:
                return v
        return None

    def text(self, *paths: str) -> str | None:
        return self._first(paths, F.text)

    def dev(self, *paths: str) -> str | None:
        return self._first(paths, F.device_id)

    def bool(self, *paths: str) -> bool | None:
        return self._first(paths, F.boolean)

    def time(self, *paths: str, unit: str | None = None) -> int | None:
        if unit is None:
            return self._first(paths, F.time_ms)
        return self._first(paths, lambda v: F.time_ms(v, unit))

    def decimal(self, *paths: str) -> Decimal | None:
        return self._first(paths, F.decimal)

    def currency(self, *paths: str) -> str | None:
        return self._first(paths, F.currency)

    def consume(self, *paths: str) -> None:
        self._used.update(paths)

    def replace(self, key: str, value: Any) -> None:
        """Show a top-level field decoded in ``properties`` (JSON carried in a string) without touching the input."""
        self._replaced[key] = value

    def rest(self) -> dict[str, Any]:
        """Every field no column took, nested objects pruned of taken fields (originally-empty objects kept)."""
        return _strip({**self.data, **self._replaced} if self._replaced else self.data, "", self._used)


def _strip(d: dict[str, Any], prefix: str, used: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        path = prefix + str(k)
        if path in used:
            continue
        if isinstance(v, dict) and v:
            sub = _strip(v, path + ".", used)
            if sub:
                out[k] = sub
        else:
            out[k] = v
    return out
