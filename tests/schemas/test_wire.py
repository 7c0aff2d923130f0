"""Confluent wire format against a fake registry speaking the documented REST API (fake_registry.py)."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from attrib.errors import Permanent, Retryable
from attrib.settings import Settings
from schemas import avro
from schemas.normalize import normalize
from schemas.wire import RegistryError, UnknownSchemaId, serde
from tests.schemas.conftest import SAMPLES
from tests.schemas.fake_registry import FakeRegistry
from tests.schemas.test_samples import raw_delivery, source_for


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


def _framed(schema_id: int) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + b"\x00"


def test_an_id_the_registry_does_not_have_is_permanent(registry: FakeRegistry) -> None:
    """404 + error_code 40403 for the record's schema id: the record can never be read, it is dead-lettered."""
    sd = serde(Settings(kafka={"schema_registry_url": registry.url}))
    with pytest.raises(UnknownSchemaId, match=r"no schema with id 99 .*40403") as caught:
        sd.decode(_framed(99))
    assert isinstance(caught.value, Permanent) and isinstance(caught.value, avro.AvroError)
    assert not isinstance(caught.value, Retryable)  # every stage's "wait for the registry" branch must not take it
    # a flood of records naming that id asks the registry once (until MISSING_TTL_S), not once per record
    for _ in range(50):
        with pytest.raises(UnknownSchemaId):
            sd.decode(_framed(99))
    assert registry.calls == ["GET /schemas/ids/99"]
    # the sink's fast path asks for the fingerprint: the same permanent answer
    assert sd.confluent is not None
    with pytest.raises(UnknownSchemaId):
        sd.confluent.fingerprint(99)


def test_a_schema_the_registry_has_but_we_cannot_read_is_permanent(registry: FakeRegistry) -> None:
    registry.schemas[7] = json.dumps({"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]})
    sd = serde(Settings(kafka={"schema_registry_url": registry.url}))
    with pytest.raises(UnknownSchemaId, match="id 7 is not a readable Avro schema"):
        sd.decode(_framed(7))


@pytest.mark.parametrize("failure", [(500, 50001), (401, 40101)], ids=["backend-datastore-5xx", "unauthorized"])
def test_registry_failures_stay_retryable(registry: FakeRegistry, failure: tuple[int, int]) -> None:
    """The registry failing or refusing us is not the record's fault: wait for it (the record is read again)."""
    producer = serde(Settings(kafka={"schema_registry_url": registry.url}))
    data = producer.encode("canonical_event", _events()[0], "attrib.events")
    registry.failure = failure
    consumer = serde(Settings(kafka={"schema_registry_url": registry.url}))
    with pytest.raises(RegistryError, match=f"HTTP {failure[0]}") as caught:
        consumer.decode(data)
    assert isinstance(caught.value, Retryable) and not isinstance(caught.value, Permanent)
    assert caught.value.error_code == failure[1]
    registry.failure = None  # back: the same record now decodes (nothing was remembered as missing)
    assert consumer.decode(data)[0] == "canonical_event"


def test_a_404_that_is_not_the_registrys_stays_retryable(registry: FakeRegistry) -> None:
    """A wrong base URL (or a proxy) answers 404 without the registry's 40403: configuration, not the record."""
    sd = serde(Settings(kafka={"schema_registry_url": registry.url + "/not-the-registry"}))
    with pytest.raises(RegistryError, match="HTTP 404") as caught:
        sd.decode(_framed(1))
    assert caught.value.error_code is None


def test_unreachable_registry_is_retryable(registry: FakeRegistry) -> None:
    url = registry.url
    registry.close()
    dead = serde(Settings(kafka={"schema_registry_url": url}))
    with pytest.raises(RegistryError):
        dead.encode("canonical_event", _events()[0], "t")
    with pytest.raises(RegistryError):
        dead.decode(_framed(1))


def test_the_fake_refuses_what_the_registry_refuses(registry: FakeRegistry) -> None:
    """The fake validates requests as documented (an invalid schema: 422 / 42201), so the client's requests are real."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(registry.url + "/subjects/t-value/versions", method="POST",
                                 data=json.dumps({"schema": "{not json"}).encode(),
                                 headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(req, timeout=5)
    assert caught.value.code == 422 and json.loads(caught.value.read())["error_code"] == 42201


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
