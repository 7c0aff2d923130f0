"""State bytes are the same whichever JSON library writes them (orjson on the hot path, json as the fallback), so
changelogs written by either read back identically."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attrib.settings import Settings
from ops.traffic.synthetic import SOURCES, generate
from schemas import avro
from streams import codec
from streams.processor import Processor
from streams.state import new_state

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_orjson_and_json_write_the_same_state_bytes() -> None:
    s = Settings(var_dir=Path("/tmp"), sources=SOURCES)
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


# --- the worker's raw_delivery reader agrees with fastavro -----------------------------------------------------------

_texts = st.text(max_size=90)  # lengths both sides of 64 bytes: one- and two-byte length varints
_raws = st.fixed_dictionaries({
    "delivery_id": _texts, "source": _texts, "mmp": _texts, "app_id": st.none() | _texts, "method": _texts,
    "path": _texts, "query_string": _texts, "headers": st.dictionaries(_texts, _texts, max_size=4),
    "body": st.binary(max_size=300), "remote_addr": _texts,
    "received_at": st.integers(-(1 << 45), 1 << 48) | st.sampled_from([0, codec._MAX_MS, codec._MAX_MS + 1]),
    "user_key": _texts,
    "header_bytes": st.none() | st.dictionaries(_texts, st.binary(max_size=70), max_size=3)})


def _ms(rec: dict[str, Any]) -> dict[str, Any]:
    t = rec["received_at"]
    return rec if type(t) is int else {**rec, "received_at": (t - EPOCH) // timedelta(milliseconds=1)}


def _fastavro(data: bytes) -> dict[str, Any] | str:
    """What the serde's reader makes of the bytes: the record (received_at as int ms), or the error's text."""
    try:
        return _ms(avro.decode(data, expect="raw_delivery")[1])
    except avro.AvroError as exc:
        return f"AvroError: {exc}"


def _hand(data: bytes) -> dict[str, Any] | str:
    """The worker's reader (its fallback gives received_at as fastavro's datetime: both are taken downstream)."""
    try:
        return _ms(codec.raw_decoder(avro.decode)(data))
    except avro.AvroError as exc:
        return f"AvroError: {exc}"


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_raws)
def test_raw_reader_reads_what_fastavro_reads(rec: dict[str, Any]) -> None:
    data = avro.encode("raw_delivery", rec)  # (the writer takes int ms for timestamp-millis)
    got = _hand(data)
    assert got == _fastavro(data)
    if rec["received_at"] <= codec._MAX_MS:  # (beyond: fastavro's datetime overflows, an AvroError for both)
        fields = [f["name"] for f in avro.codec("raw_delivery").schema["fields"]]
        assert not isinstance(got, str) and list(got) == fields
    if 0 <= rec["received_at"] <= codec._MAX_MS:  # the common case is read by hand, not by the fallback
        assert codec._raw_body(data) == got


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_raws, st.data())
def test_raw_reader_on_corrupt_bytes_answers_like_fastavro(rec: dict[str, Any], data: st.DataObject) -> None:
    """Truncated, flipped or extended records: the same record or the same AvroError as fastavro's reader."""
    good = avro.encode("raw_delivery", rec)
    cut = data.draw(st.integers(0, len(good)))
    pos = data.draw(st.integers(10, len(good) - 1))
    byte = data.draw(st.integers(0, 255))
    for bad in (good[:cut], good[:pos] + bytes([byte]) + good[pos + 1:], good + data.draw(st.binary(max_size=5))):
        assert _hand(bad) == _fastavro(bad)


def test_raw_reader_reads_the_synthetic_traffic_like_fastavro() -> None:
    for r in generate(300, seed=5, now_ms=1_780_000_000_000).raws:
        data = avro.encode("raw_delivery", r)
        assert codec._raw_body(data) == _fastavro(data)
