"""Faust can hand the agent records it already handled in the same assignment (the last one again — its read-offset
check is `>=` — or, right after a restart, the range since the committed offset a second time); the worker skips
them, but re-processes everything after a new assignment (which seeks back to the committed offsets)."""

from __future__ import annotations

from pathlib import Path

from attrib.settings import Settings
from schemas import avro
from streams.app import Processor
from tests.streams.conftest import T0, generic_body, raw_delivery


def test_an_offset_is_handled_once_per_assignment(tmp_path: Path):
    s = Settings(var_dir=tmp_path, sources=[{"name": "gen", "mmp": "generic"}])
    outs: list[bytes] = []
    proc = Processor(s, {}, lambda topic, key, value: outs.append(value) if topic == s.topics.events else None)
    proc.on_assigned({0})
    value = avro.encode("raw_delivery", raw_delivery("gen", "generic", generic_body("e1", "install", T0, "c1"),
                                                     "cuid:c1"))
    proc.handle(None, value, 0, 5)
    assert len(outs) == 1
    proc.handle(None, value, 0, 5)  # re-delivered: skipped
    assert len(outs) == 1
    proc.handle(None, value, 1, 5)  # same offset, other partition: a different message (a duplicate here)
    proc.handle(None, value, 0, 6)  # a retry at a later offset: a duplicate
    assert len(outs) == 1
    proc.handle(None, value, 0, 5)  # re-delivered from an earlier offset (a seek back): skipped too
    assert len(outs) == 1
    proc.on_assigned({0})  # after a rebalance the partition restarts from its committed offset: replayed, re-emitted
    proc.handle(None, value, 0, 5)
    assert len(outs) == 2 and avro.decode(outs[1])[1]["event_id"] == avro.decode(outs[0])[1]["event_id"]


def test_a_jump_over_offsets_is_logged_once_per_assignment(tmp_path: Path, caplog):
    """Raw offsets are contiguous (no transactional producer): a jump means records the stream never delivered."""
    import logging

    s = Settings(var_dir=tmp_path, sources=[{"name": "gen", "mmp": "generic"}])
    proc = Processor(s, {}, lambda topic, key, value: None)
    proc.on_assigned({0})
    value = avro.encode("raw_delivery", raw_delivery("gen", "generic", generic_body("e1", "install", T0, "c1"),
                                                     "cuid:c1"))
    with caplog.at_level(logging.WARNING, logger="attrib.worker"):
        for off in (5, 6, 9, 12):
            proc.handle(None, value, 0, off)
    jumps = [r for r in caplog.records if r.getMessage() == "the stream skipped offsets"]
    assert len(jumps) == 1 and jumps[0].fields == {"partition": 0, "first_skipped": 7, "next_delivered": 9}
