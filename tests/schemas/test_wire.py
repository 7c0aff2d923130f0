"""Confluent wire format against a tiny real HTTP schema registry (http.server in a thread)."""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from attrib.settings import Settings
from schemas import avro
from schemas.normalize import normalize
from schemas.wire import RegistryError, serde
from tests.schemas.conftest import SAMPLES
from tests.schemas.test_samples import raw_delivery, source_for


class FakeRegistry(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.calls: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeRegistry

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, obj: Any) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.server.calls.append(f"POST {self.path}")
        parts = self.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "subjects" or parts[2] != "versions":
            return self._send(404, {"error_code": 404, "message": "not found"})
        text = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["schema"]
        json.loads(text)  # the registry rejects non-JSON schemas
        sid = next((i for i, s in self.server.schemas.items() if s == text), len(self.server.schemas) + 1)
        self.server.schemas[sid] = text
        self.server.subjects.setdefault(parts[1], []).append(sid)
        self._send(200, {"id": sid})

    def do_GET(self) -> None:
        self.server.calls.append(f"GET {self.path}")
        parts = self.path.strip("/").split("/")
        if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and int(parts[2]) in self.server.schemas:
            return self._send(200, {"schema": self.server.schemas[int(parts[2])]})
        self._send(404, {"error_code": 40403, "message": "Schema not found"})


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    srv = FakeRegistry()
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _events() -> list[dict[str, Any]]:
    return [normalize(source_for(s), raw_delivery(s))[0] for s in SAMPLES]


def test_confluent_framing_round_trip(registry: FakeRegistry) -> None:
    sd = serde(Settings(kafka={"schema_registry_url": registry.url}))
    for ev in _events():
        data = sd.encode("canonical_event", ev, "attrib.events")
        assert data[0] == 0
        (sid,) = struct.unpack(">I", data[1:5])
        assert json.loads(registry.schemas[sid])["name"] == "CanonicalEvent"
        name, back = sd.decode(data, expect="canonical_event")
        assert name == "canonical_event" and back["event_id"] == ev["event_id"] and back["revenue"] == ev["revenue"]
    assert registry.subjects == {"attrib.events-value": [1]}  # registered once, then cached
    assert registry.calls == ["POST /subjects/attrib.events-value/versions"]  # own schema: read without a GET


def test_a_fresh_consumer_fetches_the_writer_schema(registry: FakeRegistry) -> None:
    producer = serde(Settings(kafka={"schema_registry_url": registry.url}))
    consumer = serde(Settings(kafka={"schema_registry_url": registry.url}))
    ev = _events()[0]
    alert_bytes = producer.encode("alert", {"alert_id": "a", "state": "firing", "direction": "spike",
                                            "severity": "warning", "scope": "source", "observed": 9.0,
                                            "expected": 1.0, "bucket_start": 0, "bucket_end": 1, "created_at": 2},
                                  "attrib.alerts.spike")
    ev_bytes = producer.encode("canonical_event", ev, "attrib.events")
    assert consumer.decode(alert_bytes)[0] == "alert"
    assert consumer.decode(ev_bytes)[1]["event_id"] == ev["event_id"]
    with pytest.raises(avro.AvroError):
        consumer.decode(alert_bytes, expect="canonical_event")


def test_reads_both_framings(registry: FakeRegistry) -> None:
    """With a registry configured, records written earlier in single-object encoding still decode."""
    ev = _events()[1]
    sd = serde(Settings(kafka={"schema_registry_url": registry.url}))
    assert sd.decode(avro.encode("canonical_event", ev))[1]["event_id"] == ev["event_id"]
    plain = serde(Settings())
    data = plain.encode("canonical_event", ev, "t")
    assert data[:2] == avro.MAGIC and registry.calls == []
    with pytest.raises(avro.AvroError, match="schema_registry_url"):
        plain.decode(sd.encode("canonical_event", ev, "t"))


def test_unknown_schema_id_and_unreachable_registry(registry: FakeRegistry) -> None:
    sd = serde(Settings(kafka={"schema_registry_url": registry.url}))
    with pytest.raises(RegistryError, match="404"):
        sd.decode(b"\x00" + struct.pack(">I", 99) + b"\x00")
    registry.shutdown()
    registry.server_close()
    dead = serde(Settings(kafka={"schema_registry_url": registry.url}))
    with pytest.raises(RegistryError):
        dead.encode("canonical_event", _events()[0], "t")


def test_plain_decode_names_the_confluent_framing() -> None:
    with pytest.raises(avro.AvroError, match="Confluent"):
        avro.decode(b"\x00\x00\x00\x00\x01\x02")


def test_schema_ids_map_to_the_sinks_fast_path_writers(registry: FakeRegistry) -> None:
    """The sink splices Confluent bodies like single-object ones: the id's writer schema has a known fingerprint."""
    from sinks import landing

    producer = serde(Settings(kafka={"schema_registry_url": registry.url}))
    producer.prepare([("enriched_event", "t.events"), ("raw_delivery", "t.raw"), ("dead_letter", "t.dlq")])
    consumer = serde(Settings(kafka={"schema_registry_url": registry.url})).confluent
    assert consumer is not None
    tables = {sid: getattr(landing.writers().get(consumer.fingerprint(sid)), "table", None)
              for sid in registry.schemas}
    assert sorted(tables.values(), key=str) == [None, "events_avro_in", "raw_deliveries_avro_in"]
    assert consumer.fingerprint(1) == avro.codec("enriched_event").fingerprint


def test_default_mode_is_the_avro_functions_themselves() -> None:
    """No registry: hot paths call schemas.avro directly (no per-record indirection)."""
    sd = serde(Settings())
    ev = _events()[0]
    assert sd.decode is avro.decode and sd.encoder("canonical_event", "t")(ev) == avro.encode("canonical_event", ev)
    sd.prepare([("canonical_event", "t")])  # nothing to register


def test_cached_is_one_serde_per_registry_url(registry: FakeRegistry) -> None:
    from schemas.wire import cached

    with_registry = Settings(kafka={"schema_registry_url": registry.url})
    assert cached(with_registry) is cached(Settings(kafka={"schema_registry_url": registry.url}))
    assert cached(Settings()) is cached(Settings()) and cached(Settings()).confluent is None
    assert cached(with_registry).confluent is not None
