"""The one error a normalizer raises: the delivery cannot become a valid canonical event.

Callers route it to the dead-letter topic with ``reason`` (a stable code) and ``field`` (the offending input field,
dotted for nested ones) — nothing is dropped silently.
"""

from __future__ import annotations

from attrib.errors import InputError

# Stable reason codes (dead_letter.reason); keep them, analysts and alerts filter on them.
EMPTY_BODY = "empty_body"
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_FIELD = "missing_field"
INVALID_FIELD = "invalid_field"
UNKNOWN_MMP = "unknown_mmp"
INVALID_CONFIG = "invalid_config"
INTERNAL = "internal"


class NormalizeError(InputError, ValueError):
    """The delivery cannot become a valid canonical event (a ValueError too: older callers catch that)."""

    def __init__(self, reason: str, field: str | None = None, message: str = "") -> None:
        self.reason = reason
        self.field = field
        self.message = message or reason.replace("_", " ")
        super().__init__(f"{reason}" + (f" [{field}]" if field else "") + f": {self.message}")

    def as_dict(self) -> dict[str, str | None]:
        return {"reason": self.reason, "field": self.field, "message": self.message}
