"""The evaluator agent in-process (Faust test_context, memory tables, no broker): replayed counts batches are not
double counted, late counts are not added to judged buckets, ticks evaluate closed buckets only."""

from __future__ import annotations

import asyncio
from unittest.mock import AsyncMock

import pytest

from alerts.app import build
from alerts.detector import SeriesKey
from attrib.settings import Settings

B = 300_000
K = SeriesKey("app", "fb", "install").encode()
P = SeriesKey("app", "*", "install").encode()


@pytest.fixture
async def app(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    s = Settings(var_dir=tmp_path, alerts={"tick_interval_s": 0, "detect": {"lateness_s": 600}})
    a = build(s)
    a.loop = asyncio.get_running_loop()
    a.finalize()
    a.flow_control.resume()
    monkeypatch.setattr("faust.topics.Topic.send", AsyncMock())
    return a


async def test_replayed_and_late_counts(app) -> None:  # type: ignore[no-untyped-def]
    t = app.alert_tables
    evaluate = next(ag for name, ag in app.agents.items() if name.endswith(".evaluate"))
    async with evaluate.test_context() as agent:
        rec = {"p": 0, "first": 0, "last": 9, "c": [[K, 0, 7], [K, B, 3]]}
        await agent.put(rec)
        await agent.put(rec)  # replay of the same batch after a crash
        await agent.put({"p": 1, "first": 0, "last": 4, "c": [[K, 0, 5]]})
        await agent.put({"tick": 2 * B + 600_000})  # closes buckets 0 and 1
        await agent.put({"p": 0, "first": 10, "last": 12, "c": [[K, 0, 100], [K, 2 * B, 1]]})  # late for bucket 0
    assert t["meta"]["evaluated_until"] == 2 * B
    assert t["states"][K]["n"] == 2 and t["states"][P]["n"] == 2
    assert t["states"][K]["ewma"] == pytest.approx(0.7 * 12 + 0.3 * 3)  # 7+5 (not 19) then 3
    assert dict(t["counts"]) == {str(2 * B): {K: 1, P: 1}}


async def test_counting_stage_batches_counts_and_dead_letters_only_bad_events(app) -> None:  # type: ignore[no-untyped-def]
    from faust.topics import Topic

    from schemas import avro
    from schemas.dead_letter import anchor_of, dead_letter_id

    count = next(ag for name, ag in app.agents.items() if name.endswith(".count_events"))
    ev = {"event_id": "e1", "mmp": "appsflyer", "source": "af", "app_id": "app", "event_name": "install",
          "event_type": "install", "event_time": 3 * B + 5, "received_at": 0, "user_key": "k",
          "attribution_status": "organic", "version": 1, "emitted_at": 0, "media_source": "fb"}
    async with count.test_context() as agent:
        for v in (avro.encode("enriched_event", ev), b"attrib-tick:123", avro.encode("enriched_event", ev),
                  b"not avro"):
            await agent.put(v, key=b"k")
    sent = [c.kwargs["value"] for c in Topic.send.await_args_list]
    counts = [v for v in sent if isinstance(v, dict)]
    dead = [avro.decode(v, expect="dead_letter")[1] for v in sent if isinstance(v, bytes)]
    assert [(d["reason"], d["payload"], d["stage"]) for d in dead] == [("undecodable_event", b"not avro", "alerts")]
    assert dead[0]["dead_letter_id"] == dead_letter_id("alerts", anchor_of(dead[0]["raw"]))  # anchored at its offset
    assert dead[0]["raw"]["offset"] is not None
    assert sum(n for c in counts for k, b, n in c["c"] if k == K and b == 3 * B) == 2  # the tick is not an event
