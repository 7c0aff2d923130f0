"""Schema evolution rules, checked mechanically (see README "Schemas and normalizers").

A new version of a record schema must stay readable both ways:
- forward (old reader ← new writer): a field the new writer no longer writes must have a default in the old schema;
- backward (new reader ← old writer): a field the new schema adds must have a default;
- a field kept under the same name keeps its type, except Avro promotions (int→long/float/double, long→float/double,
  float→double, string↔bytes) and a union that still contains the old type — checked with fastavro resolution.
Renames are a remove plus an add (aliases are not used here). Every published version is frozen under
``schemas/versions/<name>/vN.avsc`` and never edited.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError
from fastavro.schema import SchemaParseException

from attrib.errors import ForeignErrors, InputError

HERE = Path(__file__).resolve().parent
# The seam's table (see attrib/errors.py): a schema fastavro cannot parse or resolve is bad input to the check; it is
# reported as one of the incompatibilities :func:`problems` returns.
FOREIGN_ERRORS: ForeignErrors = {SchemaParseException: (InputError,), SchemaResolutionError: (InputError,)}
_SCHEMA_ERRORS = (SchemaParseException, SchemaResolutionError, ValueError, TypeError, KeyError, EOFError, IndexError)
_MISSING = object()


def versions(name: str) -> list[Path]:
    """Frozen versions of ``name``, oldest first."""
    d = HERE / "versions" / name
    return sorted(d.glob("v*.avsc"), key=lambda p: int(p.stem[1:])) if d.is_dir() else []


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def problems(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why ``new`` cannot replace ``old`` under the rules above (empty = compatible)."""
    out: list[str] = []
    old_f = {f["name"]: f for f in old.get("fields", [])}
    new_f = {f["name"]: f for f in new.get("fields", [])}
    for n, f in new_f.items():
        if n not in old_f and f.get("default", _MISSING) is _MISSING:
            out.append(f"added field {n!r} has no default: old records cannot be read")
    for n, f in old_f.items():
        if n not in new_f and f.get("default", _MISSING) is _MISSING:
            out.append(f"removed field {n!r} has no default in the old schema: old readers cannot read new records")
    for direction, writer, reader in (("backward", old, new), ("forward", new, old)):
        try:
            w = fastavro.parse_schema(writer, named_schemas={})
            r = fastavro.parse_schema(reader, named_schemas={})
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, w, _example(writer))
            fastavro.schemaless_reader(io.BytesIO(buf.getvalue()), w, r)
        except _SCHEMA_ERRORS as exc:
            out.append(f"{direction} resolution fails: {exc}")
    return out


def _example(schema: Any) -> Any:
    """A minimal valid datum of ``schema`` (for a resolution smoke test)."""
    if isinstance(schema, list):
        return _example(schema[0]) if schema[0] != "null" else None
    if isinstance(schema, dict):
        t = schema["type"]
        if t == "record":
            return {f["name"]: _example(f["type"]) for f in schema["fields"]}
        if t == "map":
            return {}
        if t == "array":
            return []
        if t == "enum":
            return schema["symbols"][0]
        if t == "fixed":
            return b"\0" * schema["size"]
        return _example(t)
    return {"null": None, "boolean": False, "int": 0, "long": 0, "float": 0.0, "double": 0.0, "bytes": b"",
            "string": ""}.get(schema)
