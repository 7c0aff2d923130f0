"""Helpers shared by the schemes."""

from __future__ import annotations

import base64
import binascii
import hmac


def any_equal(given: bytes, candidates: list[bytes] | tuple[bytes, ...]) -> bool:
    """Constant-time comparison against every active secret (rotation); no early exit on a match."""
    ok = False
    for c in candidates:
        ok |= hmac.compare_digest(given, c)
    return ok


def b64decode_lenient(s: str) -> bytes | None:
    """Standard or URL-safe base64, padding restored; None when it is not base64."""
    s = s.strip()
    s += "=" * (-len(s) % 4)
    try:
        if "-" in s or "_" in s:
            return base64.urlsafe_b64decode(s)
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None


def wire(s: str) -> bytes:
    """The bytes a header/query value arrived as: aiohttp decodes them as UTF-8 with ``surrogateescape``, so a
    non-UTF-8 byte (Latin-1 ``café``) comes back exactly; a lone surrogate from elsewhere is kept as UTF-16 would."""
    try:
        return s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogatepass")


def hexdecode(s: str) -> bytes | None:
    try:
        return bytes.fromhex(s.strip())
    except ValueError:
        return None
