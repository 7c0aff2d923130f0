"""Faust can hand the agent records it already handled (its read-offset check is `>=`; after a restart it re-delivers
the range since the committed offset). The worker processes them again — never drops a message as its own
duplicate — and that only re-emits the same outputs: same event id and version, no new state."""

from __future__ import annotations

from pathlib import Path

from attrib.settings import Settings
from schemas import avro
from streams.processor import Processor
from tests.streams.conftest import T0, generic_body, raw_delivery


def test_a_redelivered_offset_is_processed_again_and_re_emits_the_same_event(tmp_path: Path):
    s = Settings(var_dir=tmp_path, sources=[{"name": "gen", "mmp": "generic"}])
    outs: list[bytes] = []
    table: dict[str, bytes] = {}
    proc = Processor(s, table, lambda topic, key, value: outs.append(value) if topic == s.topics.events else None)
    proc.on_assigned({0})
    value = avro.encode("raw_delivery", raw_delivery("gen", "generic", generic_body("e1", "install", T0, "c1"),
                                                     "cuid:c1"))
    proc.handle(None, value, 0, 5)
    state = dict(table)
    proc.handle(None, value, 0, 5)  # handed over again: processed, re-emitted
    assert len(outs) == 2
    first, again = avro.decode(outs[0])[1], avro.decode(outs[1])[1]
    assert (again["event_id"], again["version"]) == (first["event_id"], first["version"])
    assert table == state
    proc.handle(None, value, 0, 6)  # the same delivery at a later offset is a retry: a duplicate, not re-emitted
    proc.handle(None, value, 1, 5)
    assert len(outs) == 2
