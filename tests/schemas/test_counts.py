"""Counts records (schemas/counts.py): the worker's tally and the evaluator's exactly-once application, modelled over
crashes that resume mid-batch, re-fetches that go back inside a batch, and drains at any moment."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.counts import SEP, Tally, fresh, series

B = 300_000


def ev(series_no: int, bucket: int, version: int = 1) -> dict[str, Any]:
    return {"app_id": "a", "media_source": f"m{series_no}", "event_type": "install", "event_time": bucket * B + 7,
            "version": version, "source": "af", "mmp": "appsflyer"}


def apply(records: list[bytes]) -> Counter[tuple[str, int]]:
    """What the evaluator does with the records, in topic order."""
    applied: dict[int, int] = {}
    out: Counter[tuple[str, int]] = Counter()
    for raw in records:
        rec = orjson.loads(raw)
        got = applied.get(rec["p"], -1)
        for k, b, n in fresh(rec, got):
            out[(k, b)] += n
        applied[rec["p"]] = max(got, rec["last"])
    return out


# per raw offset: the events it emits (series no, bucket) — the same every time it is processed
emits = st.lists(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3)), max_size=3), min_size=1, max_size=40)
# the worker's run: steps of (action, argument)
steps = st.lists(st.tuples(st.sampled_from(["process", "drain", "commit", "crash", "refetch"]), st.integers(0, 40)),
                 max_size=120)


@given(emits, steps, st.integers(0, 2))
@settings(max_examples=300, deadline=None)
def test_counts_are_applied_once_per_source_offset_whatever_the_crashes(per_offset, run, partition) -> None:
    tally = Tally(B)
    sent: list[bytes] = []
    committed = pos = 0  # the group's committed offset; the next offset the worker processes
    pending_commit = 0  # offsets a commit may cover: taken BEFORE its flush, while processing goes on

    def process_one() -> None:
        nonlocal pos
        tally.seen(partition, pos)
        for s_no, b in per_offset[pos]:
            tally.event(partition, pos, ev(s_no, b))
        pos += 1

    for action, arg in run:
        if action == "process":
            for _ in range(min(arg % 5 + 1, len(per_offset) - pos)):
                process_one()
        elif action == "drain":
            sent += tally.drain()
        elif action == "commit":  # the offsets are picked, the flush sends the counts, then the commit lands
            pending_commit = pos
            if arg % 2:  # processing goes on while the flush is awaited
                for _ in range(min(arg % 4, len(per_offset) - pos)):
                    process_one()
            sent += tally.drain()
            committed = max(committed, pending_commit)
        elif action == "crash":  # kill -9: the undrained tally is lost, the restart resumes at the commit
            tally = Tally(B)
            pos = committed
        elif action == "refetch" and pos > committed:  # Faust hands records over again, from a committed-or-later one
            pos = committed + arg % (pos - committed)
    while pos < len(per_offset):  # the last worker finishes and flushes
        process_one()
    sent += tally.drain()

    want: Counter[tuple[str, int]] = Counter()
    for evs in per_offset:
        for s_no, b in evs:
            want[(series(ev(s_no, b)), b * B)] += 1
    assert apply(sent) == want


def test_corrections_are_not_counted_again_and_feeds_are_kept() -> None:
    t = Tally(B)
    t.seen(0, 5)
    t.event(0, 5, ev(1, 2))
    t.seen(0, 6)
    t.event(0, 6, ev(1, 2, version=2))  # the late install's correction of a pending_timeout event
    t.progress(0, 1234)
    (raw,) = t.drain()
    rec = orjson.loads(raw)
    assert rec["last"] == 6 and rec["at"] == 1234
    assert list(fresh(rec, -1)) == [(SEP.join(("a", "m1", "install")), 2 * B, 1)]
    assert rec["f"] == [[SEP.join(("a", "m1")), "af", "appsflyer"]]
    assert not t and t.drain() == []


def test_series_key_matches_the_detectors() -> None:
    from alerts.detector import SEP as DETECTOR_SEP
    from alerts.detector import SeriesKey

    assert SEP == DETECTOR_SEP
    assert SeriesKey.decode(series({"app_id": None, "media_source": None, "event_type": "open"})) == SeriesKey(
        "", "(none)", "open")


def test_a_partition_without_any_record_for_a_while_reports_the_gap() -> None:
    t = Tally(B, gap_ms=60_000)
    for i, at in enumerate([1_000, 6_000, 11_000]):  # ticks every 5 s
        t.seen(0, i)
        t.progress(0, at)
    assert "g" not in orjson.loads(t.drain()[0])
    t.seen(0, 3)
    t.progress(0, 200_000)  # the next record (a tick of the restarted worker) 189 s later: nobody was there
    t.seen(0, 4)
    t.progress(0, 150_000)  # a delivery received a bit out of order does not move the clock back
    rec = orjson.loads(t.drain()[0])
    assert rec["g"] == [11_000, 200_000] and rec["a0"] == 200_000 and rec["at"] == 200_000
