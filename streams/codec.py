"""Bytes <-> user state for the changelog table. JSON (not pickle): the changelog is data, not code, and stays
readable. orjson writes the same bytes as the json module, ~4x cheaper (state has only str keys and 64-bit ints:
times, partitions, offsets). Canonical events hold ``revenue`` as a Decimal, kept as a string inside the state."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from types import NoneType
from typing import Any

import orjson

from attrib.errors import AttribError
from schemas import avro
from streams.state import State

# For what orjson refuses (ints beyond 64 bits, non-str keys); writes the same bytes as orjson otherwise.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def dump_state(state: State) -> bytes:
    try:
        # orjson returns bytes over-allocated to >= 4 KiB that it never shrinks, and a user's state bytes live as
        # long as the user (memory store): copy them to their size (~0.2 µs), or each user costs ~8 KiB of RSS.
        return bytes(memoryview(orjson.dumps(state, default=str)))
    except TypeError:  # orjson.JSONEncodeError: an int beyond 64 bits, a non-str key, …: json handles those
        return _dumps(state).encode()


def load_state(data: bytes) -> State:
    state: State = orjson.loads(data)
    for h in state["h"]:
        rev = h["e"].get("revenue")
        if isinstance(rev, str):
            h["e"]["revenue"] = Decimal(rev)
    return state


_TIMES = ("event_time", "received_at", "touch_time")


def plain(ev: dict[str, Any]) -> dict[str, Any]:
    """A canonical event as the state keeps it: times as int ms. normalize already gives ints: then the event itself
    (no copy); a copy only for datetimes (events decoded from Avro, e.g. by replay tools)."""
    g = ev.get
    if type(g("event_time")) is int and type(g("received_at")) is int and isinstance(g("touch_time"), (int, NoneType)):
        return ev  # (ints are never bools here: the Avro schema and normalize give longs)
    out = dict(ev)
    for k in _TIMES:
        v = out.get(k)
        if v is not None and not isinstance(v, int):
            out[k] = int(v.timestamp() * 1000)
    return out


# --- raw deliveries: a reader for the one record the worker reads -----------------------------------------------------

_HEAD = avro.MAGIC + avro.codec("raw_delivery").fingerprint  # the current raw_delivery schema, single-object framing
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: fastavro's datetime range (older times: its path decides)


class _Fallback(AttribError):
    """Control flow inside ``raw_decoder``, never escapes it: these bytes go to the general reader (fastavro)."""


def raw_decoder(decode: Callable[..., tuple[str, dict[str, Any]]]) -> Callable[[bytes], dict[str, Any]]:
    """``bytes -> raw delivery`` for the worker: records of the current raw_delivery schema in single-object framing
    are read by hand (straight-line, ~3x cheaper than fastavro's schemaless_reader per record), with ``received_at``
    as int epoch ms (what normalize and the state use; fastavro gives a datetime). Anything else — other framings,
    older schema versions, and every record the hand reader finds unusual (truncated, bad UTF-8, negative lengths,
    out-of-range union index or time) — goes to ``decode`` (the serde's), which returns the same record or raises
    the same AvroError as before: the hand reader only ever answers for bytes fastavro reads the same way
    (tests/streams/test_codec.py holds it to fastavro on generated and corrupted records)."""

    def read(data: bytes) -> dict[str, Any]:
        if data[:10] == _HEAD:
            try:
                return _raw_body(data)
            except (_Fallback, IndexError, UnicodeDecodeError):
                pass
        return decode(data, expect="raw_delivery")[1]

    return read


def _long(data: bytes, p: int) -> tuple[int, int]:
    """A zig-zag varint at ``p``: (value, next position)."""
    b = data[p]
    n = b & 0x7F
    shift = 7
    while b & 0x80:
        if shift > 56:  # beyond 9 bytes (63 bits): fastavro's 64-bit arithmetic decides
            raise _Fallback
        p += 1
        b = data[p]
        n |= (b & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), p + 1


def _blob(data: bytes, p: int) -> tuple[bytes, int]:
    b = data[p]
    if b < 0x80:
        n, p = b >> 1, p + 1
        if b & 1:
            raise _Fallback
    else:
        n, p = _long(data, p)
        if n < 0:
            raise _Fallback
    end = p + n
    if end > len(data):
        raise _Fallback
    return data[p:end], end


def _text(data: bytes, p: int) -> tuple[str, int]:
    b, p = _blob(data, p)
    return b.decode(), p


def _map(data: bytes, p: int, values: Callable[[bytes, int], tuple[Any, int]]) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    while True:
        n, p = _long(data, p)
        if n == 0:
            return out, p
        if n < 0:  # a block with its byte size: the size is not needed to read it
            n = -n
            _, p = _long(data, p)
        for _ in range(n):
            k, p = _text(data, p)
            out[k], p = values(data, p)


# The fields of schemas/raw_delivery.avsc in order (a new schema version has a new fingerprint: it goes to fastavro).
_RAW_FIELDS = (("delivery_id", "text"), ("source", "text"), ("mmp", "text"), ("app_id", "text?"), ("method", "text"),
               ("path", "text"), ("query_string", "text"), ("headers", "map"), ("body", "blob"),
               ("remote_addr", "text"), ("received_at", "time"), ("user_key", "text"), ("header_bytes", "blobs?"))


def _compile_raw_body() -> Callable[[bytes], dict[str, Any]]:
    """One straight-line function reading ``_RAW_FIELDS``: a string with a one-byte length (most) is read inline;
    slices past the end are caught once, by the final position check."""
    text = ["b = data[p]", "if b < 0x80 and not b & 1:", "    e = p + 1 + (b >> 1)", "    {v} = data[p + 1:e]",
            "    p = e", "else:", "    {v}, p = blob(data, p)"]
    kinds = {
        "text": [*text, "{v} = {v}.decode()"],
        "blob": text,
        "text?": ["b = data[p]", "p += 1", "if b == 0:", "    {v} = None", "elif b == 2:",
                  *("    " + x for x in [*text, "{v} = {v}.decode()"]), "else:", "    raise F"],
        "map": ["{v}, p = dmap(data, p, txt)"],
        "blobs?": ["b = data[p]", "p += 1", "if b == 0:", "    {v} = None", "elif b == 2:",
                   "    {v}, p = dmap(data, p, blob)", "else:", "    raise F"],
        "time": ["{v}, p = long(data, p)", "if not 0 <= {v} <= MAX_MS:", "    raise F"],
    }
    lines = ["def body(data):", "    p = 10"]
    for name, kind in _RAW_FIELDS:
        lines += ["    " + x.format(v=name) for x in kinds[kind]]
    lines += ["    if p > len(data):", "        raise F",
              "    return {" + ", ".join(f"{n!r}: {n}" for n, _ in _RAW_FIELDS) + "}"]
    env: dict[str, Any] = {"blob": _blob, "txt": _text, "dmap": _map, "long": _long, "F": _Fallback,
                           "MAX_MS": _MAX_MS}
    exec(compile("\n".join(lines), "<raw_delivery reader>", "exec"), env)  # our own constant text
    body: Callable[[bytes], dict[str, Any]] = env["body"]
    return body


_raw_body = _compile_raw_body()
