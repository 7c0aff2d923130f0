"""State bytes are the same whichever JSON library writes them (orjson on the hot path, json as the fallback), so
changelogs written by either read back identically."""

from __future__ import annotations

from pathlib import Path

from attrib.settings import Settings
from ops.traffic.synthetic import SOURCES, generate
from schemas import avro
from streams import codec
from streams.processor import Processor
from streams.state import new_state


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


def test_dumped_state_holds_no_spare_buffer():
    """Stored state bytes live as long as the user: no over-allocated buffer behind them (orjson's are >= 4 KiB)."""
    import tracemalloc

    st = new_state(3)
    st["s"] = {f"g-{i}-0": [1_780_000_000_000, 3, i] for i in range(5)}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [codec.dump_state(st) for _ in range(1000)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < len(kept) * (len(kept[0]) + 200), f"{held / len(kept):.0f} B held per {len(kept[0])} B state"
