"""Prometheus metrics of the worker (one registry per process; served on StreamsSettings.metrics_port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS_IN = Counter("attrib_worker_events_in_total", "Canonical events read, by event type", ["event_type"])
EVENTS_OUT = Counter("attrib_worker_events_out_total", "Enriched events emitted, by kind and status",
                     ["kind", "status"])
DELIVERIES = Counter("attrib_worker_deliveries_total", "Raw deliveries consumed")
DUPLICATES = Counter("attrib_worker_duplicates_total", "Events dropped as duplicates")
FILTERED = Counter("attrib_worker_filtered_total", "Events dropped by allowlist / first-time-only rules")
REPLAYED = Counter("attrib_worker_replayed_total", "Events re-processed after a crash/rebalance (re-emitted)")
BUFFERED = Counter("attrib_worker_buffered_total", "Events put in the pending buffer (waiting for an install)")
PENDING = Gauge("attrib_worker_pending", "Events currently waiting for an install")
TIMEOUTS = Counter("attrib_worker_timeouts_total", "Pending events emitted as pending_timeout")
CORRECTIONS = Counter("attrib_worker_corrections_total", "Corrected versions emitted after a late install")
OVERFLOWS = Counter("attrib_worker_overflow_total", "Events emitted unattributed because the buffer was full")
DEAD_LETTERS = Counter("attrib_worker_dead_letters_total", "Deliveries sent to the dead-letter topic", ["reason"])
LAG = Gauge("attrib_worker_lag", "Messages behind the end of the raw topic, by partition", ["partition"])


class Tally:
    """Per-event increments into a plain dict, published to Prometheus on each tick: a labelled ``inc()`` per event
    costs more than the state machine step it reports on."""

    def __init__(self) -> None:
        self.counts: dict[tuple[Counter, tuple[str, ...]], float] = {}

    def inc(self, metric: Counter, *labels: str, n: float = 1) -> None:
        if n:
            k = (metric, labels)
            self.counts[k] = self.counts.get(k, 0) + n

    def publish(self) -> None:
        counts, self.counts = self.counts, {}
        for (metric, labels), n in counts.items():
            (metric.labels(*labels) if labels else metric).inc(n)
