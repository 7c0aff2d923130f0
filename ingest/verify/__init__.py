"""Delivery verification: pure checks over a request exactly as received.

Every scheme is a module with ``build(options, secrets) -> Verifier`` (the receiving side) and ``sign(options, secret,
outbound, now)`` (the sending side, used by ``attrib send`` and the tests). A verifier returns ``None`` when the
request passes, else a short reason code (metrics and the operator's rejection list show it; the client never
does). Schemes run on the raw body bytes before anything parses them, and compare secrets in constant time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

# Reason codes (stable: they are metric label values). Everything but the two below answers 401.
IP_NOT_ALLOWED = "ip_not_allowed"  # 403
HTTPS_REQUIRED = "https_required"  # 403
FORBIDDEN_REASONS = frozenset({IP_NOT_ALLOWED, HTTPS_REQUIRED})


@dataclass(frozen=True, slots=True)
class Inbound:
    """What a verifier may look at. ``headers`` is case-insensitive (aiohttp's CIMultiDict or a lower-case dict)."""

    method: str
    path: str
    query_string: str
    headers: Mapping[str, str]
    body: bytes
    client: str  # the client address after trusted-proxy resolution
    secure: bool = False  # TLS to us, or a trusted proxy reported https
    path_secret: str | None = None  # the optional trailing path segment /webhooks/{source}/{secret}


@dataclass(slots=True)
class Outbound:
    """A delivery being built by a sender; ``sign`` functions add headers / query parameters / a path segment."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)  # appended to raw_query, percent-encoded
    raw_query: str = ""  # a query string kept exactly as given (e.g. a sample's wire form)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


Verifier = Callable[[Inbound, float], "str | None"]
