"""The HTTP seam for errors: aiohttp's exceptions and HTTP answers mapped to :mod:`attrib.errors`.

Every outbound HTTP client (routing destinations, Slack, the traffic generator, the inspector's probes) asks the same
two questions: did the request fail for now (connection, timeout, 408/425/429/5xx: retry) or for good (any other
non-2xx answer: this request will never succeed as it is)?
"""

from __future__ import annotations

import aiohttp

from attrib.errors import DependencyUnavailable, ForeignErrors, Permanent

# Answers that mean "not now": request timeout, too early, rate limited, server trouble.
RETRYABLE_STATUS = frozenset({408, 425, 429}) | frozenset(range(500, 600))

class HttpUnavailable(DependencyUnavailable):
    """No usable answer for now; ``reason`` is ``timeout``, ``connect_error`` or ``http_<status>``."""

    def __init__(self, reason: str, detail: str = "", status: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail, self.status = reason, detail, status


class HttpRejected(Permanent):
    """The server refused this request for good (a 4xx other than 408/425/429, or an unexpected status)."""

    def __init__(self, reason: str, detail: str = "", status: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail, self.status = reason, detail, status


# The seam's table (see attrib/errors.py). TimeoutError, the other exception a request raises, is the standard
# library's and mapped by :func:`mapped` as well.
FOREIGN_ERRORS: ForeignErrors = {aiohttp.ClientError: (HttpUnavailable, HttpRejected)}


def mapped(exc: TimeoutError | aiohttp.ClientError) -> HttpUnavailable | HttpRejected:
    """Our error for a request that raised: a timeout or connection failure is retryable; a response error raised
    by ``raise_for_status`` is judged by its status."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return for_status(exc.status, exc.message) or HttpRejected(f"http_{exc.status}", exc.message, exc.status)
    if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError is one too
        return HttpUnavailable("timeout", str(exc))
    return HttpUnavailable("connect_error", repr(exc))


def for_status(status: int, detail: str = "") -> HttpUnavailable | HttpRejected | None:
    """None for a 2xx answer, else the error it means."""
    if 200 <= status < 300:
        return None
    if status in RETRYABLE_STATUS:
        return HttpUnavailable(f"http_{status}", detail, status)
    return HttpRejected(f"http_{status}", detail, status)
