"""Log records that input can cause, rate-limited: a token bucket per reason, so a flood of malformed requests costs a
few lines per reason, while a new reason is still logged at once. aiohttp's own "Error handling request" records for
requests its parser refused (a client's fault, not ours) lose their traceback and drop to WARNING first.

Installed on the ``attrib.ingest`` and ``aiohttp.server`` loggers by :func:`install` (idempotent)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp.http_exceptions import HttpProcessingError

LOGGERS = ("attrib.ingest", "aiohttp.server")
MAX_KEYS = 1024  # reasons tracked at once; a key-flood resets the table instead of growing it


class TokenBucket(logging.Filter):
    """Lets through at most ``burst`` records per key at once and ``rate`` per second after that; each key is the
    record's reason (``fields["reason"]``, else the exception class, else the message). Counts what it drops."""

    def __init__(self, rate: float = 1.0, burst: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        _client_error_to_warning(record)
        key = _reason(record)
        now = self.clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if len(self._buckets) >= MAX_KEYS and key not in self._buckets:
            self._buckets.clear()
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            self.dropped += 1
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True


def _reason(record: logging.LogRecord) -> str:
    fields = getattr(record, "fields", None)
    if isinstance(fields, dict) and "reason" in fields:
        return f"{record.name}:{fields.get('source', '')}:{fields['reason']}"
    if record.exc_info and record.exc_info[0] is not None:
        return f"{record.name}:{record.exc_info[0].__name__}"
    return f"{record.name}:{record.msg}"


def _client_error_to_warning(record: logging.LogRecord) -> None:
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, HttpProcessingError) and record.levelno > logging.WARNING:
        first = (exc.message or "").strip().splitlines()
        record.fields = {"reason": type(exc).__name__, "status": exc.code,
                         "detail": first[0][:120] if first else ""}
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"


def install(rate: float = 1.0, burst: float = 5.0) -> None:
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenBucket) for f in logger.filters):
            logger.addFilter(TokenBucket(rate, burst))
