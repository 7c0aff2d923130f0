"""Progress with rate and ETA (pure: the caller passes the clock)."""

from __future__ import annotations

from dataclasses import dataclass


def duration(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@dataclass
class Progress:
    total: int
    done: int = 0
    started: float = 0.0
    base: int = 0  # already done when this run started (resume): not counted in the rate

    def rate(self, now: float) -> float:
        elapsed = now - self.started
        return (self.done - self.base) / elapsed if elapsed > 0 else 0.0

    def eta(self, now: float) -> float | None:
        r = self.rate(now)
        return (self.total - self.done) / r if r > 0 else None

    def render(self, now: float, width: int = 30) -> str:
        frac = min(1.0, self.done / self.total) if self.total else 1.0
        bar = "#" * int(frac * width) + "." * (width - int(frac * width))
        eta = self.eta(now)
        return (f"[{bar}] {frac:6.1%} {self.done:,}/{self.total:,} records  {self.rate(now):,.0f}/s  "
                f"ETA {duration(eta) if eta is not None else '--:--:--'}")
