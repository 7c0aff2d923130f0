"""Schema evolution both ways, and the guard that every current schema is a frozen version."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import fastavro
import pytest
from fastavro.schema import to_parsing_canonical_form

from schemas import avro
from schemas.evolution import HERE, load, problems, versions
from schemas.normalize import normalize
from tests.schemas.conftest import SAMPLES
from tests.schemas.test_samples import raw_delivery, source_for


def v1() -> dict[str, Any]:
    return load(versions("canonical_event")[0])


def v2() -> dict[str, Any]:
    s = copy.deepcopy(v1())
    s["fields"].append({"name": "country", "type": ["null", "string"], "default": None})
    return s


def _canon(schema: dict[str, Any]) -> str:
    return to_parsing_canonical_form(fastavro.parse_schema(copy.deepcopy(schema), named_schemas={}))


def _events() -> list[dict[str, Any]]:
    return [normalize(source_for(s), raw_delivery(s))[0] for s in SAMPLES]


@pytest.mark.parametrize("name", avro.NAMES)
def test_current_schema_is_the_latest_frozen_version(name: str) -> None:
    frozen = versions(name)
    assert frozen, f"freeze schemas/{name}.avsc as schemas/versions/{name}/v1.avsc"
    current = load(HERE / f"{name}.avsc")
    assert _canon(current) == _canon(load(frozen[-1])), (
        f"schemas/{name}.avsc changed: freeze it as schemas/versions/{name}/v{len(frozen) + 1}.avsc")
    for old in frozen:
        assert problems(load(old), current) == [], old.name


def test_adding_an_optional_field_is_compatible() -> None:
    assert problems(v1(), v2()) == []


def test_breaking_changes_are_reported() -> None:
    no_default = copy.deepcopy(v1())
    no_default["fields"].append({"name": "country", "type": "string"})
    assert any("no default" in p for p in problems(v1(), no_default))
    removed = copy.deepcopy(v1())
    removed["fields"] = [f for f in removed["fields"] if f["name"] != "event_id"]
    assert any("removed field 'event_id'" in p for p in problems(v1(), removed))
    retyped = copy.deepcopy(v1())
    next(f for f in retyped["fields"] if f["name"] == "mmp")["type"] = "int"
    assert any("resolution fails" in p for p in problems(v1(), retyped))


def test_old_reader_reads_new_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A consumer on v1 (the current reader) decodes records a producer wrote with v2: the new field is skipped."""
    new = avro.Codec("canonical_event", fastavro.parse_schema(v2(), named_schemas={}), avro._fp(
        fastavro.parse_schema(v2(), named_schemas={})))
    known = dict(avro._writers())
    known[new.fingerprint] = ("canonical_event", new.schema)
    monkeypatch.setattr(avro, "_writers", lambda: known)
    for ev in _events():
        data = new.encode({**ev, "country": "DE"})
        assert data[2:10] != avro.codec("canonical_event").fingerprint
        _name, back = avro.decode(data, expect="canonical_event")
        assert "country" not in back and back["event_id"] == ev["event_id"]


def test_new_reader_reads_old_writer() -> None:
    """A consumer upgraded to v2 decodes v1 records: the new field takes its default."""
    reader = fastavro.parse_schema(v2(), named_schemas={})
    for ev in _events():
        data = avro.encode("canonical_event", ev)
        back = fastavro.schemaless_reader(io.BytesIO(data[10:]), avro.codec("canonical_event").schema, reader)
        assert isinstance(back, dict)
        assert back["country"] is None and back["event_id"] == ev["event_id"]


@pytest.mark.parametrize("name", avro.NAMES)
def test_every_frozen_version_is_decodable(name: str) -> None:
    """Records written by any historical version still decode (their fingerprints are all known)."""
    from schemas.evolution import _example

    for path in versions(name):
        parsed = fastavro.parse_schema(load(path), named_schemas={})
        codec = avro.Codec(name, parsed, avro._fp(parsed))
        got, _ = avro.decode(codec.encode(_example(load(path))))
        assert got == name


def test_frozen_versions_are_valid_json() -> None:
    for name in avro.NAMES:
        for path in versions(name):
            assert json.loads(path.read_text())["type"] == "record"
