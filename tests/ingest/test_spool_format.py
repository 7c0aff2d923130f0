"""The spool's frame format: any record round-trips; a segment cut at any byte (a crash mid-write) yields exactly the
records written wholly before the cut; damage is reported, never raised."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.spool_format import Damage, Record, frame, read_one, scan

records = st.builds(
    Record,
    seq=st.integers(0, 2**64 - 1),
    at_ms=st.integers(0, 2**64 - 1),
    topic=st.text(max_size=40).filter(lambda t: len(t.encode()) < 65536),
    key=st.none() | st.binary(max_size=64),
    value=st.binary(max_size=2048),
    headers=st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=40)), max_size=4).map(tuple),
)


@given(records)
def test_any_record_round_trips(r: Record) -> None:
    data = frame(r)
    got, end, damage = read_one(data, 0)
    assert (got, end, damage) == (r, len(data), None)


@settings(max_examples=200)
@given(st.lists(records, min_size=1, max_size=6), st.data())
def test_a_cut_at_any_byte_loses_only_the_torn_last_record(rs: list[Record], data: st.DataObject) -> None:
    frames = [frame(r) for r in rs]
    blob = b"".join(frames)
    cut = data.draw(st.integers(0, len(blob)), label="cut")
    found = scan(blob[:cut])
    ends = [sum(len(f) for f in frames[:i + 1]) for i in range(len(frames))]
    whole = [r for r, end in zip(rs, ends, strict=True) if end <= cut]
    assert [r for r, _ in found.records] == whole
    assert found.good_end == (max((e for e in ends if e <= cut), default=0))
    assert (found.damage is None) == (cut in (0, *ends))  # the torn tail is reported, a clean end is not


@given(st.lists(records, min_size=1, max_size=4), st.data())
def test_a_flipped_byte_stops_the_scan_at_that_record(rs: list[Record], data: st.DataObject) -> None:
    frames = [frame(r) for r in rs]
    blob = bytearray(b"".join(frames))
    at = data.draw(st.integers(0, len(blob) - 1), label="at")
    blob[at] ^= data.draw(st.integers(1, 255), label="xor")
    found = scan(bytes(blob))
    damaged = next(i for i, end in enumerate(sum(len(f) for f in frames[:j + 1]) for j in range(len(frames)))
                   if at < end)
    assert [r for r, _ in found.records] == rs[:damaged]  # intact records before the damage, nothing after
    assert found.damage is not None


def test_a_zero_filled_tail_is_damage_not_an_empty_record() -> None:
    r = Record(1, 2, "t", b"k", b"v")
    found = scan(frame(r) + bytes(64))
    assert [x for x, _ in found.records] == [r]
    assert found.damage is Damage.BAD_LENGTH
