"""Benches drive the real ingress too: its fixture."""

from tests.ingest.conftest import start_ingress

__all__ = ["start_ingress"]
