"""Record bytes on Kafka: Avro single-object encoding by default, the Confluent wire format when
``settings.kafka.schema_registry_url`` is set.

Confluent framing: ``0x00`` + 4-byte big-endian schema id + Avro binary body. Schemas are registered under the
TopicNameStrategy subject ``<topic>-value`` (POST /subjects/<subject>/versions) and writer schemas are fetched by id
(GET /schemas/ids/<id>); both are cached for the life of the process, so the registry is called once per schema.
:func:`decode` tells the two framings apart by their first byte, so consumers read either.

Registry failures are mapped here: an id the registry says it has no schema for (404 + error_code 40403) is
:class:`UnknownSchemaId`, permanent (the record is dead-lettered); anything else (unreachable, 5xx, 401/403, a 404
that isn't the registry's) is :class:`RegistryError`, retryable (the record waits for the registry).
"""

from __future__ import annotations

import io
import json
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any, NoReturn, Protocol

import fastavro
from fastavro.schema import SchemaParseException

from attrib.errors import DependencyUnavailable, ForeignErrors
from schemas import avro

CONFLUENT_MAGIC = b"\x00"
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
SCHEMA_NOT_FOUND = 40403  # Confluent's error_code with HTTP 404 on GET /schemas/ids/<id>: no schema has this id
MISSING_TTL_S = 30.0  # an unknown id is asked again after this (a flood of poison records makes one GET per id)


class RegistryError(DependencyUnavailable, RuntimeError):
    """The schema registry could not be reached, failed (5xx) or refused a request (401/403, a 404 that isn't its
    documented "schema not found"): the registry or its configuration is at fault, not the record: wait for it, never
    dead-letter on it."""

    def __init__(self, message: str, status: int | None = None, error_code: int | None = None) -> None:
        super().__init__(message)
        self.status, self.error_code = status, error_code


class UnknownSchemaId(avro.AvroError):
    """The registry answered that no schema has this id (HTTP 404 with error_code 40403), or the schema it has for the
    id is not an Avro schema we can read. Permanent for the record that names it: every stage dead-letters such a
    record with this reason instead of waiting for the registry forever."""


# fastavro refusing a schema the registry returned for an id: that id can't be read, permanently
FOREIGN_ERRORS: ForeignErrors = {SchemaParseException: (UnknownSchemaId,)}


class Serde(Protocol):
    def encode(self, name: str, record: dict[str, Any], topic: str) -> bytes: ...

    def decode(self, data: bytes, expect: str | None = None) -> tuple[str, dict[str, Any]]: ...


@cache
def _schema_text(name: str) -> str:
    return json.dumps(json.loads((avro.HERE / f"{name}.avsc").read_text()), separators=(",", ":"))


@cache
def _fullnames() -> dict[str, str]:
    """Record full name (``attrib.CanonicalEvent``) → logical name (``canonical_event``)."""
    out = {}
    for n in avro.NAMES:
        s = json.loads((avro.HERE / f"{n}.avsc").read_text())
        out[f"{s.get('namespace', '')}.{s['name']}".lstrip(".")] = n
    return out


class RegistryClient:
    """Minimal Confluent Schema Registry client (register + fetch by id), cached, thread-safe."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, Any] = {}
        self._missing: dict[int, tuple[float, str]] = {}  # id → (when the registry said so, its words)
        self._lock = threading.Lock()

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()[:2000]
            detail = body[:200].decode("utf-8", "replace")
            raise RegistryError(f"schema registry {method} {path}: HTTP {exc.code} {detail}", exc.code,
                                _error_code(body)) from None
        except (OSError, ValueError) as exc:
            raise RegistryError(f"schema registry {method} {path}: {exc}") from None

    def register(self, subject: str, schema: str) -> int:
        key = (subject, schema)
        with self._lock:
            if key in self._ids:
                return self._ids[key]
        sid = int(self._call("POST", f"/subjects/{urllib.parse.quote(subject, safe='')}/versions",
                             {"schema": schema})["id"])
        with self._lock:
            self._ids[key] = sid
        return sid

    def known(self, schema_id: int, parsed: Any) -> None:
        """Remember a schema this process registered itself: reading its own records needs no GET."""
        with self._lock:
            self._schemas.setdefault(schema_id, parsed)

    def schema(self, schema_id: int) -> Any:
        """The parsed writer schema with this id."""
        with self._lock:
            if schema_id in self._schemas:
                return self._schemas[schema_id]
            missing = self._missing.get(schema_id)
        if missing is not None and time.monotonic() - missing[0] < MISSING_TTL_S:
            raise UnknownSchemaId(missing[1])
        try:
            answer = self._call("GET", f"/schemas/ids/{schema_id}")
        except RegistryError as exc:
            if exc.status != 404 or exc.error_code != SCHEMA_NOT_FOUND:
                raise  # down, failing, refusing us, or not a registry at that URL: wait for it
            self._miss(schema_id, f"schema registry has no schema with id {schema_id} (HTTP 404, error_code "
                                  f"{SCHEMA_NOT_FOUND})")
        try:
            if answer.get("schemaType", "AVRO") != "AVRO":
                raise ValueError(f"a {answer['schemaType']} schema")
            parsed = fastavro.parse_schema(json.loads(answer["schema"]), named_schemas={})
        except (SchemaParseException, ValueError, KeyError, TypeError, AttributeError) as exc:
            self._miss(schema_id, f"schema registry id {schema_id} is not a readable Avro schema: {exc}"[:300])
        with self._lock:
            self._schemas[schema_id] = parsed
        return parsed

    def _miss(self, schema_id: int, why: str) -> NoReturn:
        with self._lock:
            self._missing[schema_id] = (time.monotonic(), why)
        raise UnknownSchemaId(why)


def _error_code(body: bytes) -> int | None:
    """Confluent's ``error_code`` from an error answer's JSON body (None when the body is not that)."""
    try:
        code = json.loads(body).get("error_code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, int) else None


class SingleObjectSerde:
    def encode(self, name: str, record: dict[str, Any], topic: str) -> bytes:
        return avro.encode(name, record)

    def decode(self, data: bytes, expect: str | None = None) -> tuple[str, dict[str, Any]]:
        return avro.decode(data, expect)


class ConfluentSerde:
    def __init__(self, client: RegistryClient) -> None:
        self.client = client
        self._fps: dict[int, bytes] = {}

    def schema_id(self, name: str, topic: str) -> int:
        sid = self.client.register(f"{topic}-value", _schema_text(name))
        self.client.known(sid, avro.codec(name).schema)
        return sid

    def encode(self, name: str, record: dict[str, Any], topic: str) -> bytes:
        buf = io.BytesIO()
        buf.write(CONFLUENT_MAGIC + struct.pack(">I", self.schema_id(name, topic)))
        fastavro.schemaless_writer(buf, avro.codec(name).schema, record)
        return buf.getvalue()

    def fingerprint(self, schema_id: int) -> bytes:
        """The single-object fingerprint (CRC-64-AVRO of the parsing canonical form) of the writer schema with this
        id: lets a consumer treat a Confluent record like a single-object one of a schema it knows."""
        fp = self._fps.get(schema_id)
        if fp is None:
            fp = self._fps[schema_id] = avro._fp(self.client.schema(schema_id))
        return fp

    def decode(self, data: bytes, expect: str | None = None) -> tuple[str, dict[str, Any]]:
        if len(data) < 5 or data[:1] != CONFLUENT_MAGIC:
            raise avro.AvroError("not Confluent wire format (bad magic)")
        (sid,) = struct.unpack(">I", data[1:5])
        writer = self.client.schema(sid)
        name = _fullnames().get(writer["name"]) if isinstance(writer, dict) else None
        if name is None:
            raise avro.AvroError(f"schema id {sid} is not one of {', '.join(avro.NAMES)}")
        if expect is not None and name != expect:
            raise avro.AvroError(f"expected a {expect} record, got {name}")
        try:
            rec = fastavro.schemaless_reader(io.BytesIO(data[5:]), writer, avro.codec(name).schema)
        except avro.READ_ERRORS as exc:
            raise avro.AvroError(f"corrupt {name} record: {exc}") from None
        return name, rec  # type: ignore[return-value]


class AutoSerde:
    """Writes with ``writer``; reads both framings (so a registry can be switched on without a flag day).

    Hot paths take :meth:`encoder` (one callable per schema and topic) and ``decode``: without a registry these are
    ``avro`` functions themselves, so the default mode costs nothing per record over calling :mod:`schemas.avro`."""

    def __init__(self, writer: Serde, registry: RegistryClient | None) -> None:
        self.writer = writer
        self.single = SingleObjectSerde()
        self.confluent = ConfluentSerde(registry) if registry else None
        if self.confluent is None:
            self.decode = avro.decode  # type: ignore[method-assign]  # no framing switch per record

    @property
    def registry(self) -> bool:
        return self.confluent is not None

    def encoder(self, name: str, topic: str) -> Callable[[dict[str, Any]], bytes]:
        """``record -> bytes`` for records of schema ``name`` bound for ``topic``."""
        if self.confluent is None:
            return avro.codec(name).encode
        enc = self.confluent.encode
        return lambda record: enc(name, record, topic)

    def prepare(self, outputs: Iterable[tuple[str, str]]) -> None:
        """Register the (schema name, topic) pairs this process writes, at startup: the first record then does not
        wait on the registry (nor block an event loop), and a wrong registry URL fails the start, not a record."""
        if self.confluent is not None:
            for name, topic in outputs:
                self.confluent.schema_id(name, topic)

    def encode(self, name: str, record: dict[str, Any], topic: str) -> bytes:
        return self.writer.encode(name, record, topic)

    def decode(self, data: bytes, expect: str | None = None) -> tuple[str, dict[str, Any]]:
        if data[:1] == CONFLUENT_MAGIC:
            if self.confluent is None:
                raise avro.AvroError("Confluent-framed record but no kafka.schema_registry_url configured")
            return self.confluent.decode(data, expect)
        return self.single.decode(data, expect)


def serde(settings: Any) -> AutoSerde:
    """The serde the settings ask for: Confluent framing when ``kafka.schema_registry_url`` is set."""
    url = getattr(settings.kafka, "schema_registry_url", None)
    if url:
        client = RegistryClient(url)
        return AutoSerde(ConfluentSerde(client), client)
    return AutoSerde(SingleObjectSerde(), None)


@cache
def _shared(url: str | None) -> AutoSerde:
    return serde(_UrlOnly(url))


class _UrlOnly:
    def __init__(self, url: str | None) -> None:
        self.kafka = self
        self.schema_registry_url = url


def cached(settings: Any) -> AutoSerde:
    """One serde per registry URL for the whole process (schema ids and writer schemas fetched once), for code that
    has settings at hand but no long-lived object to keep a serde on (CLI tools, per-record helpers)."""
    return _shared(getattr(settings.kafka, "schema_registry_url", None) or None)
