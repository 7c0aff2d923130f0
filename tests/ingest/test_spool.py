"""The spool on a real disk (no Kafka here; test_spool_ingress.py has the end to end): appends are fsync'd in group
commits, survive a restart, a torn tail is skipped, the bound holds, drained segments are deleted, processes get
their own slots."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from ingest import spool as spool_mod
from ingest.spool import SUFFIX, Spool, SpoolUnavailable
from ingest.spool_format import Record


def _spool(root: Path, max_bytes: int = 1 << 20, segment_bytes: int = 1 << 16) -> Spool:
    sp = Spool(root, max_bytes, segment_bytes, high_water=0.5)
    sp.open()
    sp.start()
    return sp


async def _drain(sp: Spool) -> list[Record]:
    """Read everything, acknowledge it, release: what the drainer does once Kafka took it all."""
    out: list[Record] = []
    cur = sp.start_cursor()
    while True:
        got, nxt = await sp.read(cur, 4096)
        if not got:
            await sp.release(cur)
            return out
        out += got
        sp.acknowledged(got, nxt)
        await sp.release(nxt)
        cur = nxt


async def test_appends_survive_a_restart_in_order_and_a_drained_spool_leaves_no_files(tmp_path: Path) -> None:
    sp = _spool(tmp_path, segment_bytes=300)  # small segments: the records span several
    seqs = [await sp.append("raw", f"k{i}".encode(), b"v" * 50 + bytes([i]), (("h", b"x"),)) for i in range(12)]
    assert seqs == list(range(12))
    assert len(list(sp.dir.glob("*" + SUFFIX))) > 1
    await sp.close()

    again = _spool(tmp_path, segment_bytes=300)
    assert again.dir == sp.dir and again.records == 12  # the restarted process took the same slot and its records
    new = await again.append("raw", b"late", b"after the restart")
    assert new == 12  # sequence numbers continue
    got = await _drain(again)
    assert [r.seq for r in got] == list(range(13))
    assert got[3].key == b"k3" and got[3].value == b"v" * 50 + b"\x03" and got[3].headers == (("h", b"x"),)
    assert (again.records, again.bytes) == (0, 0)
    assert not list(again.dir.glob("*" + SUFFIX))
    await again.close()


async def test_a_torn_last_record_is_skipped_with_a_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sp = _spool(tmp_path)
    for i in range(3):
        await sp.append("raw", None, f"record {i}".encode())
    await sp.close()
    (seg,) = sp.dir.glob("*" + SUFFIX)
    with seg.open("r+b") as f:  # the crash cut the last write short
        f.truncate(seg.stat().st_size - 5)

    with caplog.at_level(logging.WARNING, logger="attrib.ingest.spool"):
        again = _spool(tmp_path)
    assert "damaged tail" in caplog.text
    assert again.records == 2
    await again.append("raw", None, b"record 3")  # appends go to a new segment, never after the torn bytes
    assert [r.value for r in await _drain(again)] == [b"record 0", b"record 1", b"record 3"]
    await again.close()


async def test_the_bound_refuses_what_does_not_fit(tmp_path: Path) -> None:
    sp = _spool(tmp_path, max_bytes=600)
    await sp.append("raw", None, b"x" * 200)
    await sp.append("raw", None, b"x" * 200)
    with pytest.raises(SpoolUnavailable) as refused:
        await sp.append("raw", None, b"x" * 200)
    assert refused.value.reason == "full"
    assert sp.above_high_water() is not None and "high-water" in (sp.above_high_water() or "")
    await _drain(sp)
    assert sp.above_high_water() is None
    await sp.append("raw", None, b"x" * 200)  # room again once drained
    await sp.close()


async def test_concurrent_appends_share_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(spool_mod.os, "fsync", counting)  # counts, and still syncs
    sp = _spool(tmp_path)
    seqs = await asyncio.gather(*(sp.append("raw", None, b"%d" % i) for i in range(200)))
    assert sorted(seqs) == list(range(200))
    assert len(calls) < 50  # group commit: far fewer fsyncs (segment + directory) than records
    assert [r.seq for r in await _drain(sp)] == list(range(200))
    await sp.close()


async def test_each_process_gets_its_own_slot(tmp_path: Path) -> None:
    a, b = _spool(tmp_path), _spool(tmp_path)
    assert {a.dir.name, b.dir.name} == {"0", "1"}
    await a.append("raw", None, b"from a")
    await a.close()
    c = _spool(tmp_path)  # a restart takes the freed slot, and what is in it
    assert c.dir == a.dir and c.records == 1
    await b.close()
    await c.close()


def test_the_default_spool_wait_leaves_room_under_the_shortest_sender_timeout() -> None:
    from attrib.settings import Settings
    from ingest.senders import ANSWER_TIMEOUT_S, SHORTEST_ANSWER_TIMEOUT_S
    from ingest.slow_acks import SLOW_SPOOL_AFTER_S

    assert SHORTEST_ANSWER_TIMEOUT_S == ANSWER_TIMEOUT_S["branch"] == 2.0  # README's sender table
    s = Settings()
    assert SLOW_SPOOL_AFTER_S < s.ingest.spool_after_s <= SHORTEST_ANSWER_TIMEOUT_S / 4  # the rest is fsync and slack
    assert s.ingest.spool_max_bytes > 0  # on by default


def test_a_bad_per_source_spool_wait_fails_start_naming_the_key() -> None:
    from attrib.settings import ConfigError, Settings
    from ingest.sources import compile_all

    s = Settings(sources=[{"name": "x", "mmp": "generic", "verify": ["token"], "secrets": ["t"],
                           "options": {"spool_after_s": 0}}])
    with pytest.raises(ConfigError, match=r"ATTRIB_SOURCES\[0\]__OPTIONS__SPOOL_AFTER_S"):
        compile_all(s)
