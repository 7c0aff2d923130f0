"""streams/compat.py: the worker refuses faust-streaming/aiokafka versions its patches were not written for, and on the
pinned versions each patch does what it is there for (no broker needed: nothing here connects)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

from attrib.settings import Settings
from streams import compat, worker

PINNED = {dist: versions[-1] for dist, versions in compat.KNOWN.items()}


def versions(monkeypatch: pytest.MonkeyPatch, **found: str | None) -> None:
    table = {**PINNED, **{k.replace("_", "-"): v for k, v in found.items()}}
    monkeypatch.setattr(compat, "installed", table.get)


def test_the_installed_versions_are_the_known_ones() -> None:
    compat.check_versions()
    assert {dist: compat.installed(dist) for dist in compat.KNOWN} == PINNED


@pytest.mark.parametrize("found", [{"faust_streaming": "0.16.0"}, {"aiokafka": "0.15.0"}, {"aiokafka": None}])
def test_unknown_versions_are_refused_in_one_line_naming_both(monkeypatch: pytest.MonkeyPatch,
                                                               found: dict[str, str | None]) -> None:
    versions(monkeypatch, **found)
    with pytest.raises(compat.UnsupportedVersions) as err:
        compat.check_versions()
    msg = str(err.value)
    assert "\n" not in msg
    have = {**PINNED, **{k.replace("_", "-"): v for k, v in found.items()}}
    for dist, version in have.items():
        assert f"{dist} {version or '(not installed)'}" in msg  # what is installed, both packages
        assert f"'{dist}=={PINNED[dist]}'" in msg  # what to install instead
    assert "streams/compat.py" in msg


def test_the_worker_refuses_at_start_before_touching_kafka(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    versions(monkeypatch, faust_streaming="0.16.0")
    s = Settings(var_dir=tmp_path, kafka={"bootstrap_servers": "127.0.0.1:1"})
    args = argparse.Namespace(data_dir=None, store=None, metrics_port=0)
    assert worker.main(args, s) == 2
    err = capsys.readouterr().err
    assert err.startswith("attrib worker: installed faust-streaming 0.16.0, aiokafka 0.14.0") and err.count("\n") == 1
    assert not (tmp_path / "worker").exists()  # stopped before preparing anything
    with pytest.raises(compat.UnsupportedVersions):
        compat.WorkerApp("x", fetch_max_wait_ms=100, fetch_min_bytes=1, broker="kafka://127.0.0.1:1")


def app(tmp_path: Path) -> compat.WorkerApp:
    return compat.WorkerApp("compat-test", fetch_max_wait_ms=100, fetch_min_bytes=65536, broker="kafka://127.0.0.1:1",
                            store="memory://", datadir=str(tmp_path), autodiscover=False, web_enabled=False)


async def test_fetches_wait_for_min_bytes_within_a_bounded_wait(tmp_path: Path) -> None:
    a = app(tmp_path)
    consumer = a.worker_consumer
    assert isinstance(consumer._thread, compat.WorkerConsumerThread)
    assert isinstance(a.transport, driver.Transport)
    kafka = consumer._thread._create_worker_consumer(a.transport)
    try:
        assert kafka._fetch_max_wait_ms == 100  # Faust hard-codes 1500
        assert kafka._fetch_min_bytes == 65536  # Faust passes none: aiokafka's 1
    finally:
        await kafka.stop()


async def test_the_worker_app_fetches_with_the_streams_settings(tmp_path: Path) -> None:
    from streams.app import new_app

    s = Settings(var_dir=tmp_path, kafka={"bootstrap_servers": "127.0.0.1:1"},
                 streams={"fetch_min_bytes": 300_000, "fetch_max_wait_ms": 40})
    a = new_app(s, tmp_path / "data", "memory://")
    assert isinstance(a.transport, driver.Transport)
    kafka = a.worker_consumer._thread._create_worker_consumer(a.transport)
    try:
        assert (kafka._fetch_min_bytes, kafka._fetch_max_wait_ms) == (300_000, 40)
    finally:
        await kafka.stop()


async def test_gaps_are_never_acknowledged(tmp_path: Path) -> None:
    consumer = app(tmp_path).worker_consumer
    tp = TP("raw", 0)
    await consumer._add_gap(tp, 3, 7)
    assert not consumer._gap[tp]
    await driver.Consumer._add_gap(consumer, tp, 3, 7)  # what Faust itself does: offsets 3..7 count as acknowledged
    assert consumer._gap[tp]


async def test_fausts_pre_commit_flush_flushes_the_workers_batches(tmp_path: Path) -> None:
    producer = app(tmp_path).worker_producer
    calls: list[str] = []

    async def ours() -> None:
        calls.append("worker")

    producer.before_flush = ours
    await producer.flush()  # nothing buffered, producer not started: Faust's part has nothing to do
    assert calls == ["worker"]


def test_a_forward_jump_exits_70_and_a_new_assignment_starts_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []

    def _exit(code: int) -> None:
        exits.append(code)

    monkeypatch.setattr(compat.os, "_exit", _exit)
    guard = compat.SkipGuard()
    for p, off in [(0, 5), (0, 6), (1, 40), (0, 6), (0, 3), (0, 4), (1, 41)]:  # re-deliveries go back: allowed
        guard.check(p, off)
    assert exits == []
    guard.check(0, 5)
    guard.check(0, 7)  # offset 6 skipped
    assert exits == [70]
    guard.reset()
    guard.check(1, 90)  # after a rebalance the stream starts at the committed offset, wherever it is
    assert exits == [70]


def test_the_exit_logs_the_partitions_consumer_state_and_exits_even_if_that_fails(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    exits: list[int] = []
    monkeypatch.setattr(compat.os, "_exit", exits.append)
    asked: list[int] = []

    def state(partition: int) -> dict[str, Any]:
        asked.append(partition)
        return {"generation": 2, "committed": None, "read_offset": 37}

    guard = compat.SkipGuard(state)
    for off in (35, 36, 36, 30, 31):  # re-deliveries go back: no diagnostics asked
        guard.check(8, off)
    assert asked == [] and exits == []
    with caplog.at_level(logging.CRITICAL, logger="attrib.worker"):
        guard.check(8, 33)
    assert exits == [70] and asked == [8]
    fields = caplog.records[-1].fields  # type: ignore[attr-defined]  # set by log extra=
    assert fields == {"partition": 8, "first_skipped": 32, "next_delivered": 33, "generation": 2, "committed": None,
                      "read_offset": 37}

    def broken(partition: int) -> dict[str, Any]:
        raise RuntimeError("consumer gone")

    guard = compat.SkipGuard(broken)
    guard.check(1, 5)
    with pytest.raises(RuntimeError):  # os._exit is patched here; for real the process is gone before this raises
        guard.check(1, 7)
    assert exits == [70, 70]


def test_a_resume_while_flowing_keeps_the_queued_records(tmp_path: Path) -> None:
    """Faust's recovery calls flow_control.resume() again after the streams flow; mode's resume clears the stream
    queues each time, dropping records the fetch loop already handed on (the guard's exit 70 in bench (c))."""
    a = app(tmp_path)
    flow = a.flow_control
    queue = a.FlowControlQueue(maxsize=10, clear_on_resume=True)  # how Faust builds a topic channel's queue
    assert not flow.is_active()  # suspended until the first recovery resumes it
    flow.resume()
    queue.put_nowait("offset 36")
    queue.put_nowait("offset 37")
    flow.resume()  # recovery's later resume, after records of this assignment are queued
    assert queue.qsize() == 2
    flow.suspend()  # a rebalance: what is queued belongs to the revoked assignment
    flow.resume()
    assert queue.qsize() == 0


def subscribed(a: compat.WorkerApp, tp: TP, maxsize: int) -> Any:
    """A stream channel subscribed to ``tp`` through Faust's own conductor handler, as an agent's is."""
    channel = a.topic(tp.topic)
    channel.maxsize = maxsize  # (read when its queue is first built)
    conductor: Any = a.topics  # faust.transport.conductor.Conductor (typed as its interface)
    conductor._tp_to_callback[tp] = conductor._build_handler(tp, {channel})
    return channel


async def test_a_delivery_is_inline_only_when_nothing_in_it_can_wait(tmp_path: Path) -> None:
    a = app(tmp_path)
    consumer, tp = a.worker_consumer, TP("raw", 0)
    queue = subscribed(a, tp, maxsize=2).queue
    assert consumer._delivery_can_wait(tp)  # flow is suspended until the first recovery resumes it
    a.flow_control.resume()
    assert not consumer._delivery_can_wait(tp)
    queue.put_nowait("offset 1")
    queue.put_nowait("offset 2")
    assert consumer._delivery_can_wait(tp)  # the stream queue is full: the conductor would wait for room
    queue.get_nowait()
    assert not consumer._delivery_can_wait(tp)
    buffer = a.producer.buffer
    for i in range(buffer.max_messages + 1):
        buffer.pending.put_nowait(i)
    assert consumer._delivery_can_wait(tp)  # Faust's producer buffer is over its limit: the conductor flushes first
    assert buffer.size == buffer.pending.qsize()  # (what the check reads instead of Faust's settings-reading size)
    while not buffer.pending.empty():
        buffer.pending.get_nowait()
    assert not consumer._delivery_can_wait(tp)
    consumer.suspend_flow.set()  # a rebalance stopped the flow
    assert consumer._delivery_can_wait(tp)
    consumer.suspend_flow.clear()
    conductor: Any = a.topics
    async with conductor._tp_to_callback_lock:  # the conductor is rebuilding its handlers
        assert consumer._delivery_can_wait(tp)
    assert not consumer._delivery_can_wait(tp)
    assert consumer._delivery_can_wait(TP("raw", 1))  # no handler (yet): Faust's path


class Record:
    def __init__(self, offset: int) -> None:
        self.offset = offset


async def test_the_fetch_loop_hands_on_every_record_in_order_inline_or_through_faust_when_it_could_wait(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = app(tmp_path)
    consumer, tp = a.worker_consumer, TP("raw", 0)
    a.flow_control.resume()
    full_at = {3, 4}  # the stream queue is full when these arrive: Faust's wait_first path
    delivered: list[int] = []
    waited: list[int] = []

    async def getmany(timeout: float) -> Any:
        for offset in range(8):
            yield tp, Record(offset)
        yield tp, Record(2)  # a re-fetched record below the read offset is dropped, as Faust does
        consumer._stopped.set()  # one batch, then the loop ends

    async def callback(message: Record) -> None:
        delivered.append(message.offset)

    async def wait_first(*coros: Any) -> Any:
        coro = coros[0]
        waited.append(len(delivered))
        await coro
        for other in coros[1:]:
            other.close()

    monkeypatch.setattr(consumer, "getmany", getmany)
    monkeypatch.setattr(consumer, "callback", callback)
    monkeypatch.setattr(consumer, "wait_first", wait_first)
    monkeypatch.setattr(consumer, "_delivery_can_wait", lambda _tp: len(delivered) in full_at)

    class Fetcher:
        _stopped = consumer._stopped.__class__()

    await consumer._drain_messages(Fetcher())  # type: ignore[arg-type]
    assert delivered == list(range(8))
    assert waited == [3, 4]
    assert consumer.read_offset(tp) == 7


def test_fausts_monitor_sensor_is_left_out_but_the_monitor_stays(tmp_path: Path) -> None:
    a = app(tmp_path)
    a.on_init_dependencies()  # what starting the app does first
    assert a.monitor not in set(a.sensors)
    a.monitor.track_tp_end_offset(TP("raw", 0), 5)  # Faust's consumer still calls it directly
    plain = faust.App("plain", broker="kafka://127.0.0.1:1", store="memory://", datadir=str(tmp_path / "plain"),
                      autodiscover=False, web_enabled=False)
    plain.on_init_dependencies()
    assert plain.monitor in set(plain.sensors)  # what Faust does: per-event bookkeeping for its web views
