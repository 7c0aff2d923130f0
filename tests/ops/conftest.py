"""Operator tools drive the real ingress: its fixture."""

from tests.ingest.conftest import start_ingress

__all__ = ["start_ingress"]
