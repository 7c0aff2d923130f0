"""What an MMP module returns, and the checks every module shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.errors import MISSING_FIELD, NormalizeError


@dataclass
class Extract:
    """Canonical column values taken from one event object (keyword names of canonical.build, plus ``app_id`` and
    optionally ``event_id`` when the MMP sends one), and the fields that identify the event for the fingerprint."""

    fields: dict[str, Any]
    id_fields: dict[str, Any] | None = None  # None = fingerprint the whole object
    key_mmp: str | None = None  # user-key rule to use when it differs from the source's MMP (Branch legacy)


def require(value: Any, name: str, what: str = "") -> Any:
    """Raise missing_field naming ``name`` (the input field the MMP should have sent) when value is absent."""
    if value is None:
        raise NormalizeError(MISSING_FIELD, name, what or f"{name} is required")
    return value
