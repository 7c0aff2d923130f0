"""The ingress's bounded local spool: where a verified delivery goes when Kafka has not acknowledged it within
``ingest.spool_after_s``. The request is answered 2xx only once its record is on disk (fsync'd), so a broker crash
costs neither a refusal nor a delivery; drain.py re-produces the spool in order once Kafka answers again.

On disk: ``<spool_dir>/<slot>/<first seq>.spool`` segments of spool_format frames, append-only. Each ingress process
holds a lock on one slot (``<slot>.lock``, the lowest free one), so ``--workers N`` processes never share a segment
and a restarted process takes its predecessor's slot — and drains what it left. Appends are group-committed: every
record queued while one write+fsync runs goes out in the next one (one fsync for many requests), on a dedicated
thread, never on the event loop. A segment is deleted only once every record in it is acknowledged by Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from attrib.errors import DependencyUnavailable
from ingest import metrics
from ingest.spool_format import Damage, Record, frame, read_one, scan

log = logging.getLogger("attrib.ingest.spool")
SUFFIX = ".spool"
T = TypeVar("T")


class SpoolUnavailable(DependencyUnavailable):
    """The spool cannot take this record (``reason``: full, or io_error); the request falls back to waiting for
    Kafka, as without a spool."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(slots=True)
class Segment:
    path: Path
    size: int  # readable end: fsync'd bytes (or the last intact record of a recovered segment)
    sealed: bool  # no more appends: the drainer may move past its end


@dataclass(frozen=True, slots=True)
class Cursor:
    """The drainer's position: just past the last record it has had acknowledged."""

    segment: Path | None
    offset: int


class Spool:
    def __init__(self, root: Path, max_bytes: int, segment_bytes: int, high_water: float) -> None:
        self.root, self.max_bytes, self.segment_bytes = root, max_bytes, segment_bytes
        self.high_water_bytes = int(max_bytes * high_water)
        self.dir = root  # the claimed slot (open())
        self.segments: list[Segment] = []
        self.records = 0  # spooled and not yet acknowledged by Kafka
        self.bytes = 0  # on disk (undeleted segments) + queued for the next write: what max_bytes bounds
        self.oldest_ms: int | None = None  # spooled-at of the oldest unacknowledged record
        self.next_seq = 0
        self._lock_fd: int | None = None
        self._fd: int | None = None  # the segment being appended to
        self._queue: list[tuple[Record, bytes, asyncio.Future[int]]] = []
        self._queued = asyncio.Event()
        self._appended = asyncio.Event()  # wakes the drainer
        self._io = asyncio.Lock()  # segment changes: the writer's batches vs the drainer's seal-and-delete
        self._writer: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="spool")

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def open(self) -> None:
        """Blocking (start-up, in an executor): claim a slot, recover what a previous process left in it."""
        self.root.mkdir(parents=True, exist_ok=True)
        for slot in range(4096):
            fd = os.open(self.root / f"{slot}.lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._lock_fd, self.dir = fd, self.root / str(slot)
            break
        else:
            raise SpoolUnavailable("io_error", f"no free spool slot under {self.root}")
        self.dir.mkdir(exist_ok=True)
        for path in sorted(self.dir.glob("*" + SUFFIX)):
            self._recover(path)
        self._publish()
        if self.records:
            log.warning("spool holds records from a previous run: draining them first", extra={"fields": {
                "dir": str(self.dir), "records": self.records, "bytes": self.bytes}})

    def _recover(self, path: Path) -> None:
        data = path.read_bytes()
        found = scan(data)
        if found.damage is not None:  # a torn last write (crash mid-append): everything before it is intact
            metrics.SPOOL_TORN.inc()
            log.warning("spool segment has a damaged tail: skipped", extra={"fields": {
                "segment": path.name, "reason": found.damage.value, "kept_records": len(found.records),
                "skipped_bytes": len(data) - found.good_end}})
        if not found.records:
            path.unlink()
            return
        first, last = found.records[0][0], found.records[-1][0]
        self.segments.append(Segment(path, found.good_end, sealed=True))
        self.records += len(found.records)
        self.bytes += len(data)
        self.next_seq = max(self.next_seq, last.seq + 1)
        self.oldest_ms = first.at_ms if self.oldest_ms is None else min(self.oldest_ms, first.at_ms)

    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name="spool-writer")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        for _, _, fut in self._queue:  # none in practice: handlers finished before cleanup
            if not fut.done():
                fut.set_exception(SpoolUnavailable("io_error", "the spool is closing"))
        self._queue.clear()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the slot
            self._lock_fd = None
        self._pool.shutdown(wait=True)

    # -- appending (the request path) ------------------------------------------------------------------------------
    async def append(self, topic: str, key: bytes | None, value: bytes,
                     headers: tuple[tuple[str, bytes], ...] = ()) -> int:
        """Queue the record for the next group commit; returns its seq once it is fsync'd. Raises SpoolUnavailable
        when it would not fit under max_bytes or the disk refused it."""
        rec = Record(self.next_seq, int(time.time() * 1000), topic, key, value, headers)
        data = frame(rec)
        if self.bytes + len(data) > self.max_bytes:
            metrics.SPOOL_REFUSED.labels("full").inc()
            raise SpoolUnavailable("full", f"the spool is full ({self.bytes} of {self.max_bytes} bytes)")
        self.next_seq += 1
        self.bytes += len(data)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((rec, data, fut))
        self._queued.set()
        return await fut

    async def _write_loop(self) -> None:
        while True:
            await self._queued.wait()
            async with self._io:
                batch, self._queue = self._queue, []
                self._queued.clear()
                if not batch:
                    continue
                started = time.monotonic()
                try:
                    size = await self._run(self._write, [data for _, data, _ in batch], batch[0][0].seq)
                except OSError as exc:
                    self.bytes -= sum(len(d) for _, d, _ in batch)
                    metrics.SPOOL_REFUSED.labels("io_error").inc(len(batch))
                    log.error("spool write failed", extra={"fields": {"error": str(exc), "records": len(batch)}})
                    for _, _, fut in batch:
                        if not fut.done():
                            fut.set_exception(SpoolUnavailable("io_error", f"spool write failed: {exc}"))
                    continue
                metrics.SPOOL_WRITE_SECONDS.observe(time.monotonic() - started)
                seg = self.segments[-1]
                seg.size = size
                self.records += len(batch)
                if self.oldest_ms is None:
                    self.oldest_ms = batch[0][0].at_ms
                self._publish()
                for rec, _, fut in batch:
                    if not fut.done():  # a cancelled request: its record is spooled all the same
                        fut.set_result(rec.seq)
                self._appended.set()

    def _write(self, frames: list[bytes], first_seq: int) -> int:
        """Blocking (spool thread): append and fsync one batch; returns the segment's new size."""
        if self._fd is not None and self.segments[-1].size >= self.segment_bytes:
            self._seal()
        if self._fd is None:
            path = self.dir / f"{first_seq:020d}{SUFFIX}"
            self._fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND, 0o600)
            _fsync_dir(self.dir)  # the new name itself must survive a crash
            self.segments.append(Segment(path, 0, sealed=False))
        seg = self.segments[-1]
        data = memoryview(b"".join(frames))
        try:
            done = 0
            while done < len(data):
                done += os.write(self._fd, data[done:])
            os.fsync(self._fd)
        except OSError:
            with contextlib.suppress(OSError):  # leave no partial frame behind; later batches go to a new segment
                os.ftruncate(self._fd, seg.size)
            self._seal()
            raise
        return seg.size + len(data)

    def _seal(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.segments and not self.segments[-1].sealed:
            self.segments[-1].sealed = True

    # -- draining ----------------------------------------------------------------------------------------------------
    def start_cursor(self) -> Cursor:
        return Cursor(None, 0)

    async def read(self, cur: Cursor, max_bytes: int) -> tuple[list[Record], Cursor]:
        """The next intact records after ``cur`` (about ``max_bytes`` of them, at least one when there is one) and
        the cursor past them. Sealed segments are followed into the next one."""
        while True:
            seg = self._segment_at(cur)
            if seg is None:
                return [], cur
            cur = Cursor(seg.path, cur.offset if cur.segment == seg.path else 0)
            if cur.offset < seg.size:
                break
            nxt = self._after(seg)
            if not seg.sealed or nxt is None:
                return [], cur
            cur = Cursor(nxt.path, 0)
        want = min(seg.size - cur.offset, max(max_bytes, 1))
        buf = await self._run(_pread, seg.path, cur.offset, want)
        first, _, damage = read_one(buf, 0)
        if first is None and damage is Damage.TRUNCATED and want < seg.size - cur.offset:  # one record > max_bytes
            buf = await self._run(_pread, seg.path, cur.offset, seg.size - cur.offset)
        found = scan(buf)
        if not found.records:  # damage inside the durable region (a disk fault): skip the rest of this segment
            metrics.SPOOL_TORN.inc()
            log.error("spool segment damaged: rest of it skipped", extra={"fields": {
                "segment": seg.path.name, "offset": cur.offset, "reason": (found.damage or damage or
                                                                            Damage.BAD_PAYLOAD).value}})
            seg.size = cur.offset
            return [], Cursor(seg.path, cur.offset)
        return [r for r, _ in found.records], Cursor(seg.path, cur.offset + found.good_end)

    def acknowledged(self, records: list[Record], cur: Cursor) -> None:
        """The drainer had these stored by Kafka (or found their first produce stored them)."""
        self.records -= len(records)
        seg = self._segment_at(cur)
        self.oldest_ms = None
        if seg is not None and (cur.offset < seg.size or self._after(seg) is not None):
            self.oldest_ms = records[-1].at_ms  # the next one is at least this old: a close upper bound, cheaply
        self._publish()

    async def release(self, cur: Cursor) -> None:
        """Delete every segment wholly before ``cur``; and the one ``cur`` is at when it is fully drained and idle
        (nothing queued): it is sealed first, the next append starts a new segment."""
        async with self._io:
            keep: list[Segment] = []
            for seg in self.segments:
                if cur.segment is not None and seg.path.name < cur.segment.name:
                    await self._drop(seg)  # wholly before the cursor: every record in it acknowledged
                elif seg.path == cur.segment and cur.offset >= seg.size and not self._queue \
                        and seg is self.segments[-1]:
                    if not seg.sealed:
                        await self._run(self._seal)
                    await self._drop(seg)
                else:
                    keep.append(seg)
            self.segments = keep
            self._publish()

    async def _drop(self, seg: Segment) -> None:
        size = await self._run(_size_and_unlink, seg.path)
        self.bytes = max(0, self.bytes - size)

    async def appended(self, timeout: float) -> None:
        """Wait until a new batch is on disk (or ``timeout``)."""
        waiter = asyncio.ensure_future(self._appended.wait())
        try:
            await asyncio.wait((waiter,), timeout=timeout)
        finally:
            waiter.cancel()
        self._appended.clear()

    def above_high_water(self) -> str | None:
        if self.bytes <= self.high_water_bytes:
            return None
        age = (time.time() * 1000 - self.oldest_ms) / 1000 if self.oldest_ms is not None else 0.0
        return (f"local spool above its high-water mark: {self.bytes} of {self.max_bytes} bytes "
                f"({self.records} records waiting for Kafka, oldest {age:.0f} s)")

    # -- helpers -----------------------------------------------------------------------------------------------------
    def _segment_at(self, cur: Cursor) -> Segment | None:
        """The cursor's segment; or, once that one is deleted (or before the first read), the next one."""
        for seg in self.segments:
            if cur.segment is None or seg.path.name >= cur.segment.name:
                return seg
        return None

    def _after(self, seg: Segment) -> Segment | None:
        i = self.segments.index(seg)
        return self.segments[i + 1] if i + 1 < len(self.segments) else None

    def _publish(self) -> None:
        metrics.SPOOL_RECORDS.set(self.records)
        metrics.SPOOL_BYTES.set(self.bytes)
        self.publish_age()

    def publish_age(self) -> None:
        age = 0.0 if self.oldest_ms is None else max(0.0, time.time() - self.oldest_ms / 1000)
        metrics.SPOOL_OLDEST_AGE.set(age)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)


def _pread(path: Path, offset: int, n: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(n)


def _size_and_unlink(path: Path) -> int:
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    _fsync_dir(path.parent)
    return size


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
