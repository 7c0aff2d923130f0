"""The Processor's dead letters come from the one constructor (schemas.dead_letter): the id is fixed by the Kafka
position, so a message processed again after a restart overwrites its dead letter downstream instead of adding one."""

from __future__ import annotations

from pathlib import Path

from attrib.settings import Settings
from schemas import avro
from schemas.dead_letter import dead_letter_id
from streams.processor import Processor
from tests.streams.conftest import T0, generic_body, raw_delivery


def run(tmp_path: Path, records: list[tuple[bytes, int, int]]) -> list[tuple[bytes | None, dict]]:
    s = Settings(var_dir=tmp_path, sources=[{"name": "gen", "mmp": "generic"}])
    dead: list[tuple[bytes | None, dict]] = []
    proc = Processor(s, {}, lambda topic, key, value: dead.append((key, avro.decode(value)[1]))
                     if topic == s.topics.dead_letters else None)
    proc.on_assigned({0, 1})
    for value, partition, offset in records:
        proc.handle(None, value, partition, offset)
    return dead


def test_a_dead_letter_keeps_its_id_per_kafka_position(tmp_path: Path) -> None:
    bad = b"not avro"
    dead = run(tmp_path, [(bad, 0, 5), (bad, 0, 5), (bad, 0, 6), (bad, 1, 5)])
    ids = [d["dead_letter_id"] for _, d in dead]
    assert ids[0] == ids[1] == dead_letter_id("process", "attrib.raw-deliveries/0/5")
    assert len({ids[0], ids[2], ids[3]}) == 3
    key, first = dead[0]
    assert key is None and first["reason"] == "invalid_record" and first["stage"] == "process"
    assert first["payload"] == bad and first["raw"] == {"topic": "attrib.raw-deliveries", "partition": 0, "offset": 5}


def test_a_delivery_that_cannot_be_normalized_is_dead_lettered_with_its_origin(tmp_path: Path) -> None:
    raw = raw_delivery("elsewhere", "generic", generic_body("e1", "install", T0, "c1"), "cuid:c1")
    value = avro.encode("raw_delivery", raw)
    [(key, dl)] = run(tmp_path, [(value, 0, 9)])
    assert key == b"cuid:c1"
    assert (dl["stage"], dl["reason"], dl["source"], dl["mmp"], dl["delivery_id"]) == \
        ("normalize", "unknown_source", "elsewhere", "generic", raw["delivery_id"])
    assert dl["dead_letter_id"] == dead_letter_id("normalize", "attrib.raw-deliveries/0/9")


class CountingTable(dict[str, bytes]):
    """A dict table that counts writes: each one is a changelog record in the worker (streams/outputs.py)."""

    writes = 0

    def __setitem__(self, user: str, value: bytes) -> None:
        self.writes += 1
        super().__setitem__(user, value)


def test_at_most_one_changelog_record_per_delivery_and_none_for_a_duplicate(tmp_path: Path) -> None:
    from ops.traffic.synthetic import SOURCES, generate

    s = Settings(var_dir=tmp_path, sources=SOURCES)
    traffic = generate(300, now_ms=T0)
    values = [avro.encode("raw_delivery", r) for r in traffic.raws]
    table = CountingTable()
    outputs: list[bytes] = []
    proc = Processor(s, table, lambda topic, key, value: outputs.append(value))
    proc.on_assigned({0})
    per_delivery = []
    for offset, value in enumerate(values):
        before = table.writes
        proc.handle(None, value, 0, offset)
        per_delivery.append(table.writes - before)
    assert max(per_delivery) == 1 and traffic.duplicates > 0
    assert sum(per_delivery) <= len(values) - traffic.duplicates  # retried deliveries changed nothing
    states = {u: table[u] for u in table}
    emitted = len(outputs)
    for offset, value in enumerate(values):  # the same deliveries again at new offsets: all duplicates now
        before = table.writes
        proc.handle(None, value, 0, len(values) + offset)
        assert table.writes == before
    assert {u: table[u] for u in table} == states and len(outputs) == emitted
