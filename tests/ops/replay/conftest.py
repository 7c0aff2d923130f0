"""Replay drives real workers: the worker tests' fixtures."""

from tests.streams.conftest import worker_settings, workers

__all__ = ["worker_settings", "workers"]
