"""Delivery policy as pure state machines with an explicit clock: backoff with jitter, token bucket, circuit breaker."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from attrib.http_errors import RETRYABLE_STATUS as RETRYABLE_STATUS  # defined at the HTTP seam; kept importable here


def backoff(attempt: int, initial: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Delay before retry number ``attempt`` (1-based): exponential, capped, "equal jitter" in [d/2, d]."""
    d = min(cap, initial * 2 ** min(attempt - 1, 60))
    return d / 2 + rand() * d / 2


def retry_after(header: str | None, cap: float) -> float | None:
    """Seconds from a numeric Retry-After header, capped; None if absent or not a number."""
    try:
        return min(cap, max(0.0, float(header))) if header else None
    except ValueError:
        return None


@dataclass
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved. ``take`` reserves one and says how long to wait for it."""

    rate: float
    burst: int
    tokens: float = field(init=False)
    at: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self, now: float) -> float:
        if self.at is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate)
        self.at = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


@dataclass
class Breaker:
    """Closed → open after ``failures`` consecutive failures; after ``reset_s`` one probe (half-open) decides."""

    failures: int
    reset_s: float
    state: str = "closed"  # closed | open | half_open
    consecutive: int = 0
    opened_at: float = 0.0

    def allow(self, now: float) -> bool:
        if self.state == "closed":
            return True
        if self.state == "open" and now - self.opened_at >= self.reset_s:
            self.state = "half_open"  # this caller is the probe; everyone else waits for its outcome
            return True
        return False

    def wait_s(self, now: float) -> float:
        """How long a caller refused by allow() should sleep before asking again."""
        if self.state == "open":
            return max(0.01, self.reset_s - (now - self.opened_at))
        return 0.05  # half-open: a probe is in flight

    def record(self, ok: bool, now: float) -> None:
        if ok:
            self.state, self.consecutive = "closed", 0
            return
        self.consecutive += 1
        if self.state == "half_open" or self.consecutive >= self.failures:
            self.state, self.opened_at = "open", now

    @property
    def is_open(self) -> bool:
        return self.state != "closed"
