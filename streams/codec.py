"""Bytes <-> user state for the changelog table. JSON (not pickle): the changelog is data, not code, and stays
readable. orjson writes the same bytes as the json module, ~4x cheaper (state has only str keys and 64-bit ints:
times, partitions, offsets). Canonical events hold ``revenue`` as a Decimal, kept as a string inside the state."""

from __future__ import annotations

import json
from decimal import Decimal
from types import NoneType
from typing import Any

import orjson

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
