"""Shared steps for sink tests: a migrated warehouse, a running sink thread, and waiting for it to catch up."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from attrib.settings import Settings
from attrib.topics import ensure_topics
from sinks import migrate
from sinks.clickhouse import connect
from sinks.service import Sink


def warehouse(s: Settings):
    ensure_topics(s)
    client = connect(s)
    migrate.migrate(client, s)
    return client


def wait_for(cond: Callable[[], Any], what: str, limit: float = 60.0) -> Any:
    """Poll until cond() is truthy; the limit only bounds a hung test, it is not what the test asserts."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


@contextmanager
def running(s: Settings) -> Iterator[Sink]:
    sink = Sink(s)
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


def caught_up(sink: Sink, n: int) -> Callable[[], bool]:
    """All n records consumed, flushed and their days' rollups rebuilt."""
    def check() -> bool:
        m = sink.metrics
        return m.consumed >= n and sum(m.inserted.values()) + m.rejected_rows >= n and sink.settled()
    return check


def scalar(client, sql: str) -> Any:
    return client.query(sql).result_rows[0][0]
