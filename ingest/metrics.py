"""Prometheus metrics of the ingress. With several worker processes (``--workers N``) prometheus-client's multiprocess
mode aggregates them: server.py sets PROMETHEUS_MULTIPROC_DIR before any worker imports this module."""

from __future__ import annotations

import os
from functools import cache

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

UNKNOWN_SOURCE = "_unknown"  # label for requests naming no configured source (bounded cardinality)

REQUESTS = Counter("attrib_ingest_requests_total", "Requests answered, by source and HTTP status.",
                   ["source", "status"])
VERIFY_FAILURES = Counter("attrib_ingest_verification_failures_total",
                          "Rejected by verification, by source and reason.", ["source", "reason"])
DEAD_LETTERS = Counter("attrib_ingest_dead_letters_total",
                       "Verified deliveries stored to the dead-letter topic, by source and reason.",
                       ["source", "reason"])
PRODUCE_SECONDS = Histogram("attrib_ingest_produce_seconds", "Time from produce to Kafka's acknowledgement.",
                            buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 20))
IN_FLIGHT = Gauge("attrib_ingest_in_flight", "Deliveries waiting for Kafka's acknowledgement.",
                  multiprocess_mode="livesum")
KAFKA_ERRORS = Counter("attrib_ingest_kafka_errors_total", "Producer errors, by kind.", ["kind"])
HEADER_TIMEOUTS = Counter("attrib_ingest_header_timeouts_total",
                          "Connections answered 408 and closed: no request head within ingest.header_timeout_s.")
STORE_SECONDS = Histogram("attrib_ingest_store_seconds", "A verified delivery's wait from verification to its 2xx: "
                          "Kafka's ack (stored), or the fsync to the local spool (spooled).", ["how"],
                          buckets=(.005, .01, .025, .05, .1, .25, .5, .75, 1, 1.5, 2, 3, 5, 10, 15))
SPOOL_RECORDS = Gauge("attrib_ingest_spool_records", "Deliveries in the local spool not yet acknowledged by Kafka.",
                      multiprocess_mode="livesum")
SPOOL_BYTES = Gauge("attrib_ingest_spool_bytes", "Bytes of the local spool on disk (≤ ingest.spool_max_bytes).",
                    multiprocess_mode="livesum")
SPOOL_OLDEST_AGE = Gauge("attrib_ingest_spool_oldest_age_seconds",
                         "Age of the oldest spooled delivery not yet acknowledged by Kafka (0 when none).",
                         multiprocess_mode="livemax")
SPOOLED = Counter("attrib_ingest_spooled_total", "Deliveries answered 2xx from the local spool (Kafka's ack was late).",
                  ["source"])
SPOOL_DRAINED = Counter("attrib_ingest_spool_drained_total", "Spooled deliveries settled, by how: produced again, "
                        "or their first produce turned out stored.", ["outcome"])
SPOOL_REFUSED = Counter("attrib_ingest_spool_refused_total", "Deliveries the spool could not take (full, io_error).",
                        ["reason"])
SPOOL_WRITE_SECONDS = Histogram("attrib_ingest_spool_write_seconds", "One group commit: write + fsync of a batch.",
                                buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
SPOOL_TORN = Counter("attrib_ingest_spool_damaged_total", "Damaged spool tails skipped (a write torn by a crash).")
BODY_BYTES = Histogram("attrib_ingest_body_bytes", "Body sizes after transport decoding.", ["source"],
                       buckets=(256, 1024, 4096, 16384, 65536, 262144, 1 << 20, 4 << 20))


@cache
def requests(source: str, status: int) -> Counter:
    return REQUESTS.labels(source, str(status))  # cached child: label lookup off the hot path


@cache
def body_bytes(source: str) -> Histogram:
    return BODY_BYTES.labels(source)


@cache
def store_seconds(how: str) -> Histogram:
    return STORE_SECONDS.labels(how)


@cache
def spooled(source: str) -> Counter:
    return SPOOLED.labels(source)


def exposition() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
