"""State bytes are the same whichever JSON library writes them (orjson on the hot path, json as the fallback), so
changelogs written by either read back identically."""

from __future__ import annotations

from pathlib import Path

from attrib.settings import Settings
from schemas import avro
from streams import codec
from streams.app import Processor
from streams.synthetic import SOURCES, generate


def test_orjson_and_json_write_the_same_state_bytes() -> None:
    s = Settings(var_dir=Path("/tmp"), sources=SOURCES)  # type: ignore[arg-type]
    table: dict[str, bytes] = {}
    proc = Processor(s, table, lambda topic, k, v: None)
    for i, r in enumerate(generate(150, seed=3, now_ms=1_780_000_000_000).raws):
        proc.handle(None, avro.encode("raw_delivery", r), i % 3, i)
    assert codec.orjson is not None
    for raw in table.values():
        st = codec.load_state(raw)
        assert codec.dump_state(st) == codec._dumps(st).encode() == raw
        assert codec.load_state(codec._dumps(st).encode()) == st


def test_fallback_for_what_orjson_refuses() -> None:
    st = {"p": 0, "c": 1 << 70, "l": 0, "s": {}, "t": [], "o": {}, "h": []}
    assert codec.dump_state(st) == codec._dumps(st).encode()
