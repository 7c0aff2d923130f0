"""Avro on the wire: single-object encoding (``C3 01`` + CRC-64-AVRO fingerprint + body).

Consumers resolve the writer's schema by fingerprint from the ``.avsc`` files in this package (current ones and the
frozen history under ``versions/``), then read it into the current (reader) schema — no registry needed.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError
from fastavro.schema import fingerprint, to_parsing_canonical_form

from attrib.errors import ForeignErrors, InputError
from schemas.avro_writer import Unsupported, compile_writer

HERE = Path(__file__).resolve().parent
MAGIC = b"\xc3\x01"
# Control records the worker produces into the raw topic (expiry ticks). Not deliveries: every raw-topic consumer
# other than the worker skips values starting with this.
TICK = b"attrib-tick:"

# logical name -> file stem; the current schema of each is <stem>.avsc
NAMES = ("raw_delivery", "canonical_event", "enriched_event", "dead_letter", "alert")


class AvroError(InputError, ValueError):
    """Bytes that are not a record of a known schema (a ValueError too: callers of the codecs catch that)."""


# What fastavro raises reading bytes that are not a valid body of the writer schema (fuzzed: truncation → EOFError,
# bad UTF-8 → UnicodeDecodeError, a union or enum index out of range → IndexError; huge lengths, bad decimals →
# ValueError/OverflowError; a writer the reader cannot resolve → SchemaResolutionError). All become AvroError.
READ_ERRORS: tuple[type[Exception], ...] = (EOFError, ValueError, IndexError, OverflowError, SchemaResolutionError)
FOREIGN_ERRORS: ForeignErrors = {SchemaResolutionError: (AvroError,)}


@dataclass(frozen=True)
class Codec:
    name: str
    schema: Any  # parsed fastavro schema
    fingerprint: bytes  # 8 bytes, little-endian CRC-64-AVRO as the spec writes it
    body: Callable[[dict[str, Any]], bytes] | None = None  # compiled fast path (schemas/avro_writer.py)

    def encode(self, record: dict[str, Any]) -> bytes:
        if self.body is not None:
            try:
                return MAGIC + self.fingerprint + self.body(record)
            except (Unsupported, UnicodeEncodeError):
                pass  # fastavro gives the same bytes, or the proper error
        buf = io.BytesIO()
        buf.write(MAGIC)
        buf.write(self.fingerprint)
        fastavro.schemaless_writer(buf, self.schema, record)
        return buf.getvalue()


def _parse(path: Path) -> Any:
    return fastavro.parse_schema(json.loads(path.read_text()), named_schemas={})


def _fp(parsed: Any) -> bytes:
    return struct.pack("<Q", int(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"), 16))


@cache
def codec(name: str) -> Codec:
    """The codec writing the current schema ``name`` (one of NAMES)."""
    if name not in NAMES:
        raise KeyError(f"unknown schema {name!r}; known: {', '.join(NAMES)}")
    parsed = _parse(HERE / f"{name}.avsc")
    try:
        body = compile_writer(json.loads((HERE / f"{name}.avsc").read_text()))
    except Unsupported:
        body = None
    return Codec(name, parsed, _fp(parsed), body)


@cache
def _writers() -> dict[bytes, tuple[str, Any]]:
    """fingerprint -> (name, writer schema) for every current and historical schema."""
    out: dict[bytes, tuple[str, Any]] = {}
    for name in NAMES:
        c = codec(name)
        out[c.fingerprint] = (name, c.schema)
        for old in sorted((HERE / "versions" / name).glob("*.avsc")) if (HERE / "versions" / name).is_dir() else []:
            parsed = _parse(old)
            out.setdefault(_fp(parsed), (name, parsed))
    return out


def encode(name: str, record: dict[str, Any]) -> bytes:
    return codec(name).encode(record)


def decode(data: bytes, expect: str | None = None) -> tuple[str, dict[str, Any]]:
    """Decode single-object bytes into (schema name, record in the current reader schema)."""
    if data[:1] == b"\x00" and len(data) >= 5:
        raise AvroError("Confluent wire format (schema registry id): set kafka.schema_registry_url to read it")
    if len(data) < 10 or data[:2] != MAGIC:
        raise AvroError("not Avro single-object encoding (bad magic)")
    found = _writers().get(data[2:10])
    if found is None:
        raise AvroError(f"unknown writer schema fingerprint {data[2:10].hex()}")
    name, writer = found
    if expect is not None and name != expect:
        raise AvroError(f"expected a {expect} record, got {name}")
    reader = codec(name).schema
    try:
        # The current schema needs no resolution: None spares fastavro a deep compare of the two schemas per record.
        rec = fastavro.schemaless_reader(io.BytesIO(data[10:]), writer, None if writer is reader else reader)
    except READ_ERRORS as exc:
        raise AvroError(f"corrupt {name} record: {exc}") from None
    return name, rec  # type: ignore[return-value]
