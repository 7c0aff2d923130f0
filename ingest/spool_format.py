"""The spool's record format (pure): one frame per record, appended to a segment file.

    frame   = length:u32 crc:u32 payload            (big-endian; crc = CRC-32 of the length bytes + payload)
    payload = seq:u64 at_ms:u64 topic:u16+bytes key:i32+bytes (-1 = no key) value:u32+bytes
              n_headers:u16 (name:u16+bytes value:u32+bytes)*

The CRC covers the length too, so a zero-filled tail (a file extended but never written, as some filesystems leave
after a crash) is a bad frame, not an empty record. Frames are only ever appended and fsync'd, so damage can only be
at the end of a segment: :func:`scan` stops there and reports what it skipped."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from enum import Enum

_HEAD = struct.Struct(">II")
_FIXED = struct.Struct(">QQ")
_U16, _U32, _I32 = struct.Struct(">H"), struct.Struct(">I"), struct.Struct(">i")
MIN_PAYLOAD = _FIXED.size + _U16.size + _I32.size + _U32.size + _U16.size
MAX_PAYLOAD = 64 << 20  # far above any record the ingress produces: a larger length is damage, not data
HEAD_SIZE = _HEAD.size


@dataclass(frozen=True, slots=True)
class Record:
    """One delivery exactly as it was to be produced."""

    seq: int  # position in this spool; re-production follows it
    at_ms: int  # when it was spooled (the oldest-age metric)
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = field(default=())


class Damage(Enum):
    TRUNCATED = "truncated"  # the frame runs past the end of the data: a write cut short
    BAD_LENGTH = "bad_length"  # an impossible length (zeros or garbage)
    BAD_CRC = "bad_crc"  # the bytes are not what was written
    BAD_PAYLOAD = "bad_payload"  # the CRC matched but the payload does not parse (a bug, not a crash)


def frame(r: Record) -> bytes:
    topic = r.topic.encode()
    parts = [_FIXED.pack(r.seq, r.at_ms), _U16.pack(len(topic)), topic]
    if r.key is None:
        parts.append(_I32.pack(-1))
    else:
        parts += [_I32.pack(len(r.key)), r.key]
    parts += [_U32.pack(len(r.value)), r.value, _U16.pack(len(r.headers))]
    for name, value in r.headers:
        n = name.encode()
        parts += [_U16.pack(len(n)), n, _U32.pack(len(value)), value]
    payload = b"".join(parts)
    length = _U32.pack(len(payload))
    return _HEAD.pack(len(payload), zlib.crc32(payload, zlib.crc32(length))) + payload


def read_one(buf: bytes | memoryview, pos: int) -> tuple[Record | None, int, Damage | None]:
    """The record framed at ``pos`` → (record, end offset, None); or (None, pos, damage) when no intact frame starts
    there. ``Damage.TRUNCATED`` at the end of data still being written only means: not complete yet."""
    end_of_head = pos + HEAD_SIZE
    if end_of_head > len(buf):
        return None, pos, Damage.TRUNCATED
    length, crc = _HEAD.unpack_from(buf, pos)
    if not MIN_PAYLOAD <= length <= MAX_PAYLOAD:
        return None, pos, Damage.BAD_LENGTH
    end = end_of_head + length
    if end > len(buf):
        return None, pos, Damage.TRUNCATED
    payload = bytes(buf[end_of_head:end])
    if zlib.crc32(payload, zlib.crc32(_U32.pack(length))) != crc:
        return None, pos, Damage.BAD_CRC
    try:
        return _parse(payload), end, None
    except (struct.error, UnicodeDecodeError, ValueError):
        return None, pos, Damage.BAD_PAYLOAD


@dataclass(frozen=True, slots=True)
class Scan:
    records: list[tuple[Record, int]]  # each with the offset just past it
    good_end: int  # offset past the last intact record
    damage: Damage | None  # why scanning stopped before the end of the data (None: it did not)


def scan(buf: bytes | memoryview, start: int = 0, limit: int | None = None) -> Scan:
    """Intact records from ``start``, at most ``limit`` of them; stops at the first damaged frame."""
    out: list[tuple[Record, int]] = []
    pos = start
    while pos < len(buf) and (limit is None or len(out) < limit):
        rec, end, damage = read_one(buf, pos)
        if rec is None:
            return Scan(out, pos, damage)
        out.append((rec, end))
        pos = end
    return Scan(out, pos, None)


def _parse(p: bytes) -> Record:
    seq, at_ms = _FIXED.unpack_from(p, 0)
    pos = _FIXED.size
    topic, pos = _take(p, pos, _U16)
    (klen,) = _I32.unpack_from(p, pos)
    pos += _I32.size
    key: bytes | None = None
    if klen >= 0:
        key, pos = p[pos:pos + klen], pos + klen
        _check(p, pos)
    value, pos = _take(p, pos, _U32)
    (n,) = _U16.unpack_from(p, pos)
    pos += _U16.size
    headers = []
    for _ in range(n):
        name, pos = _take(p, pos, _U16)
        hval, pos = _take(p, pos, _U32)
        headers.append((name.decode(), hval))
    if pos != len(p):
        raise ValueError("trailing bytes in payload")
    return Record(seq, at_ms, topic.decode(), key, value, tuple(headers))


def _take(p: bytes, pos: int, size: struct.Struct) -> tuple[bytes, int]:
    (n,) = size.unpack_from(p, pos)
    start = pos + size.size
    _check(p, start + n)
    return p[start:start + n], start + n


def _check(p: bytes, end: int) -> None:
    if end > len(p):
        raise ValueError("field runs past the payload")
