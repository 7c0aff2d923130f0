"""Prometheus metrics of `attrib route`, per destination (one registry per router, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class RouteMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.matched = Counter("attrib_route_matched", "Events matched by a destination's filter.", ["destination"],
                               registry=r)
        self.sent = Counter("attrib_route_sent", "Events delivered (2xx).", ["destination"], registry=r)
        self.failed = Counter("attrib_route_failed_attempts", "Failed attempts (before any retry).",
                              ["destination", "reason"], registry=r)
        self.dead = Counter("attrib_route_dead_lettered", "Events dead-lettered after the last attempt.",
                            ["destination", "reason"], registry=r)
        self.skipped = Counter("attrib_route_skipped", "Events skipped by a template's missing-value policy.",
                               ["destination"], registry=r)
        self.preset_skipped = Counter("attrib_route_preset_skipped", "Events a vendor preset did not send (reason: "
                                      "no_identity …).", ["destination", "reason"], registry=r)
        self.latency = Histogram("attrib_route_latency_seconds", "Request latency.", ["destination"], registry=r,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.circuit_open = Gauge("attrib_route_circuit_open", "1 while the destination's circuit is open.",
                                  ["destination"], registry=r)
        self.queued = Gauge("attrib_route_queued", "Events waiting for the destination.", ["destination"], registry=r)
        self.consumed = Counter("attrib_route_consumed", "Records read from the events topic.", registry=r)
