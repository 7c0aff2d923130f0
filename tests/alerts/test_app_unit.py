"""The evaluator agent in-process (Faust test_context, memory tables, no broker): counts re-sent by a worker that
resumed mid-batch are applied once per source offset, buckets are judged only once every raw partition's progress has
passed their end + lateness (a watermark), and late counts are not added to judged buckets."""

from __future__ import annotations

import asyncio
from unittest.mock import AsyncMock

import pytest

from alerts.app import build
from alerts.detector import SeriesKey
from attrib.settings import Settings

B = 300_000
LATE = 600_000
K = SeriesKey("app", "fb", "install").encode()
P = SeriesKey("app", "*", "install").encode()


@pytest.fixture
async def app(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    s = Settings(var_dir=tmp_path, topics={"partitions": 2},
                 alerts={"tick_interval_s": 0, "ready_port": 0, "detect": {"lateness_s": LATE // 1000}})
    a = build(s)
    a.loop = asyncio.get_running_loop()
    a.finalize()
    a.flow_control.resume()
    monkeypatch.setattr("faust.topics.Topic.send", AsyncMock())
    return a


def rec(p: int, last: int, at: int, *entries: tuple[str, int, list[int]]) -> dict:
    return {"p": p, "last": last, "at": at, "c": [list(e) for e in entries], "f": [["app\x1ffb", "af", "appsflyer"]]}


async def test_resumed_batches_late_counts_and_the_watermark(app) -> None:  # type: ignore[no-untyped-def]
    t = app.alert_tables
    evaluate = next(ag for name, ag in app.agents.items() if name.endswith(".evaluate"))
    async with evaluate.test_context() as agent:
        first = rec(0, 9, 0, (K, 0, list(range(7))), (K, B, [7, 8, 9]))
        await agent.put(first)
        await agent.put(first)  # the same record again (a producer retry): nothing new
        # the worker was killed after sending that record and resumed at the committed offset 5: offsets 5-9 come
        # again, 10 is new
        await agent.put(rec(0, 10, 0, (K, 0, [5, 6]), (K, B, [7, 8, 9, 10])))
        await agent.put(rec(1, 4, 2 * B + LATE, (K, 0, [0, 1, 2, 3, 4])))
        # partition 0 is still behind (a worker catching up): nothing judged yet, whatever the wall clock says
        await agent.put({"tick": 10 * B})
        assert "evaluated_until" not in t["meta"]
        await agent.put(rec(0, 12, 2 * B + LATE))  # its progress (e.g. from a tick record): buckets 0 and 1 close
        assert t["meta"]["evaluated_until"] == 2 * B
        await agent.put(rec(0, 14, 2 * B + LATE, (K, 0, [13]), (K, 2 * B, [14])))  # late for bucket 0
    assert t["states"][K]["n"] == 2 and t["states"][P]["n"] == 2
    assert t["states"][K]["ewma"] == pytest.approx(0.7 * 12 + 0.3 * 4)  # 7+5 (not 19, not 14) then 3+1
    assert dict(t["counts"]) == {str(2 * B): {K: 1, P: 1}}
    assert t["meta"]["p:0"] == [14, 2 * B + LATE, 0, 0] and t["meta"]["p:1"] == [4, 2 * B + LATE, 0, 0]
    assert t["meta"]["feed:app\x1ffb"] == [["af", "appsflyer"]]


@pytest.mark.parametrize("seen", [
    {"a0": 10 * B},  # the next batch starts there (the evaluator sees the gap)
    {"a0": 6 * B, "g": [6 * B, 10 * B]},  # the restarted worker first re-processed old ticks, then saw the gap
])
async def test_buckets_while_the_whole_pipeline_was_down_are_not_judged(app, seen) -> None:  # type: ignore[no-untyped-def]
    """Both partitions hold no record from 6 B to 10 B (no delivery received, no worker tick): those buckets are
    skipped, not judged as zero; buckets with traffic around them are judged."""
    t = app.alert_tables
    evaluate = next(ag for name, ag in app.agents.items() if name.endswith(".evaluate"))
    async with evaluate.test_context() as agent:
        off = 0
        for b in range(6):  # six buckets of traffic, each partition processed up to the bucket's end
            for p in (0, 1):
                await agent.put({**rec(p, off, (b + 1) * B, (K, b * B, [off])), "a0": b * B + 1})
            off += 1
        # down from 6 B to 10 B: the next records start there
        for p in (0, 1):
            await agent.put({**rec(p, off, 12 * B + LATE, (K, 10 * B, [off]), (K, 11 * B, [off])), **seen})
    judged = 12 - 4  # buckets 0-11 closed, 6-9 not observed
    assert t["meta"]["evaluated_until"] == 12 * B
    assert t["states"][K]["n"] == judged, t["states"][K]
    assert t["meta"]["p:0"][2:] == [6 * B, 10 * B]
