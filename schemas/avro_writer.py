"""A compiled Avro body writer for the schemas the pipeline writes on its hot path (canonical/enriched events).

fastavro's ``schemaless_writer`` walks the schema for every record (≈30–40 µs for an enriched event); this generates
one Python function per schema that writes the fields in order with no dispatch. It covers only what our schemas use
(null, boolean, int, long, string, bytes, timestamp-millis as int ms, decimal bytes, maps, records, unions with null).
The ingress's raw_delivery (two maps) is one of them. For
anything it does not handle exactly (a datetime, a wrong type, a missing field without default) it raises
:class:`Unsupported` and the caller falls back to fastavro, which gives the same bytes or the proper error — so
output is byte-identical to fastavro (tests/schemas/test_avro_writer.py checks it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from attrib.errors import AttribError

_MISSING = object()


class Unsupported(AttribError):
    """Control flow, never escapes :mod:`schemas.avro`: this record (or schema) needs fastavro's general writer."""


def _long(n: Any) -> bytes:
    if type(n) is not int or not -(1 << 63) <= n < (1 << 63):
        raise Unsupported
    n = (n << 1) ^ (n >> 63)
    if n < 0x80:
        return _BYTE[n]
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    if 1 << 35 <= n < 1 << 42:  # epoch milliseconds of this era (zig-zagged): six bytes
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14 & 0x7F | 0x80, n >> 21 & 0x7F | 0x80,
                      n >> 28 & 0x7F | 0x80, n >> 35))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_BYTE = [bytes([i]) for i in range(256)]
_SOME_STR = [b"\x02" + bytes([i << 1]) for i in range(64)]  # union tag 1 + a short string's length


def _int(n: Any) -> bytes:
    if type(n) is not int or not -(1 << 31) <= n < (1 << 31):
        raise Unsupported
    return _long(n)


def _string(s: Any) -> bytes:
    if type(s) is not str:
        raise Unsupported
    b = s.encode()  # lone surrogates raise: fastavro then raises its own error
    return _long(len(b)) + b


def _bytes(b: Any) -> bytes:
    if type(b) is not bytes:
        raise Unsupported
    return _long(len(b)) + b


def _boolean(v: Any) -> bytes:
    if v is True:
        return b"\x01"
    if v is False:
        return b"\x00"
    raise Unsupported


def _decimal(precision: int, scale: int) -> Callable[[Any], bytes]:
    def enc(d: Any) -> bytes:  # same arithmetic as fastavro's prepare_bytes_decimal
        if type(d) is not Decimal:
            raise Unsupported
        sign, digits, exp = d.as_tuple()
        if not isinstance(exp, int) or len(digits) > precision or exp + scale < 0:
            raise Unsupported
        u = int("".join(map(str, digits)) or "0") * 10 ** (exp + scale)
        b = (-u if sign else u).to_bytes((u.bit_length() + 8) // 8, "big", signed=True)
        return _long(len(b)) + b
    return enc


def _map(values: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    def enc(m: Any) -> bytes:  # fastavro's write_map: one block (count, entries) and the end marker, or only the marker
        if type(m) is not dict:
            raise Unsupported
        if not m:
            return b"\x00"
        out = [_long(len(m))]
        for k, v in m.items():
            out.append(_string(k))
            out.append(values(v))
        out.append(b"\x00")
        return b"".join(out)
    return enc


def compile_writer(schema: dict[str, Any]) -> Callable[[dict[str, Any]], bytes]:
    """A function record -> Avro body bytes for a record schema (raises Unsupported for unknown schema shapes)."""
    named: dict[str, Any] = {}
    return _record(schema, named, schema.get("namespace"))


def _resolve(t: Any, named: dict[str, Any], ns: str | None) -> Callable[[Any], bytes]:
    if isinstance(t, str):
        simple = {"long": _long, "int": _int, "string": _string, "bytes": _bytes, "boolean": _boolean}
        if t in simple:
            return simple[t]
        full = t if "." in t or not ns else f"{ns}.{t}"
        if full in named:
            return named[full]
        raise Unsupported(t)
    if isinstance(t, list):
        nulls = [i for i, b in enumerate(t) if b == "null"]
        if len(t) != 2 or len(nulls) != 1:
            raise Unsupported("union")
        null_ix = nulls[0]
        inner = _resolve(t[1 - null_ix], named, ns)
        tag_null, tag_val = _long(null_ix), _long(1 - null_ix)
        return lambda v: tag_null if v is None else tag_val + inner(v)
    if isinstance(t, dict):
        kind, logical = t.get("type"), t.get("logicalType")
        if kind == "record":
            return _record(t, named, ns)
        if kind == "map":
            return _map(_resolve(t["values"], named, ns))
        if kind == "long" and logical == "timestamp-millis":
            return _long  # int ms only; datetimes go to fastavro
        if kind == "bytes" and logical == "decimal":
            return _decimal(int(t["precision"]), int(t.get("scale", 0)))
        if logical is None and isinstance(kind, str):
            return _resolve(kind, named, ns)
    raise Unsupported(repr(t)[:60])


def _record(t: dict[str, Any], named: dict[str, Any], ns: str | None) -> Callable[[Any], bytes]:
    """Generated code: one straight-line function per record, common field shapes inlined (no per-field calls).

    Two variants: the one returned reads every field by subscript (records from our own code carry every key) and
    hands a record missing one to the other, which applies defaults. A record-typed field holding the same object
    as an earlier field of that record type (an enriched event's first and last touch, often) reuses its bytes."""
    ns = t.get("namespace", ns)
    name = t["name"] if "." in t["name"] or not ns else f"{ns}.{t['name']}"
    env: dict[str, Any] = {"U": Unsupported, "M": _MISSING, "L": _long, "B": _BYTE, "S": _SOME_STR}
    cell: list[Callable[[Any], bytes]] = []
    # a record may refer to itself: the name must resolve before cell[0] exists, so the call is looked up late
    named[name] = lambda rec: cell[0](rec)  # noqa: PLW0108 - late binding is the point
    body: list[str] = []
    first_of: dict[str, int] = {}  # record type -> index of the first field of that type (for the memo)
    memo: list[int] = []
    for i, f in enumerate(t["fields"]):
        ftype = f["type"]
        if isinstance(ftype, list) and (len(ftype) != 2 or "null" not in ftype):
            raise Unsupported("union")  # only [null, X] / [X, null]: the rest goes to fastavro
        nullable = isinstance(ftype, list)
        default = f.get("default", None if nullable else _MISSING)
        env[f"d{i}"] = default
        env[f"n{i}"] = f["name"]
        body.append(f"    v = GET{i}")
        inner = ftype
        if nullable:
            inner = ftype[1] if ftype[0] == "null" else ftype[0]
        if isinstance(inner, dict) and inner.get("logicalType") == "timestamp-millis" and inner["type"] == "long":
            inner = "long"  # int ms only; a datetime raises Unsupported in L and goes to fastavro
        tag_null, tag_val = (b"\x00", b"\x02") if not nullable or ftype[0] == "null" else (b"\x02", b"\x00")
        if nullable and inner == "string" and ftype[0] == "null":  # the common [null, string]: one append
            body += ["    if v is None: a(b'\\x00')", "    elif type(v) is not str: raise U", "    else:",
                     "        b = v.encode()", "        n = len(b)",
                     "        a((S[n] if n < 64 else b'\\x02' + L(n)) + b)"]
            continue
        pre = "    "
        if nullable:
            body += [f"    if v is None: a({tag_null!r})", "    else:", f"        a({tag_val!r})"]
            pre = "        "
        if inner == "string":
            body += [f"{pre}if type(v) is not str: raise U", f"{pre}b = v.encode()", f"{pre}n = len(b)",
                     f"{pre}a((B[n << 1] if n < 64 else L(n)) + b)"]
        elif inner == "long":
            body += [f"{pre}a(B[v << 1] if type(v) is int and 0 <= v < 64 else L(v))"]
        elif inner == "boolean":
            body += [f"{pre}if v is True: a(b'\\x01')", f"{pre}elif v is False: a(b'\\x00')", f"{pre}else: raise U"]
        else:
            env[f"e{i}"] = _resolve(inner, named, ns)
            rname = _record_name(inner, ns)
            j = first_of.setdefault(rname, i) if rname is not None else i
            if j == i:
                if rname is not None:
                    memo.append(i)
                body.append(f"{pre}x{i} = v; w{i} = e{i}(v); a(w{i})" if rname is not None else f"{pre}a(e{i}(v))")
            else:
                body.append(f"{pre}a(w{j} if v is x{j} else e{i}(v))")
    head = ["    if type(rec) is not dict: raise U", "    o = []", "    a = o.append"]
    head += [f"    x{i} = w{i} = None" for i in memo]
    lines = [*head, *body, "    return b''.join(o)"]
    get = re.compile(r"GET(\d+)")
    slow = ["def slow(rec):"]
    for x in lines:
        slow.append(get.sub(r"rec.get(n\1, d\1)", x))
        m = get.search(x)
        if m and env[f"d{m[1]}"] is _MISSING:
            slow.append("    if v is M: raise U")
    fast = ["def write(rec):", "  try:", *("  " + get.sub(r"rec[n\1]", x) for x in lines),
            "  except KeyError:", "    return slow(rec)"]
    exec(compile("\n".join(slow + fast), f"<avro writer {name}>", "exec"), env)
    cell.append(env["write"])
    named[name] = env["write"]
    return env["write"]


def _record_name(t: Any, ns: str | None) -> str | None:
    """The full name of a record type (inline or by name), else None."""
    if isinstance(t, dict) and t.get("type") == "record":
        return t["name"] if "." in t["name"] or not ns else f"{t.get('namespace', ns)}.{t['name']}"
    if isinstance(t, str) and t not in ("long", "int", "string", "bytes", "boolean", "null", "float", "double"):
        return t if "." in t or not ns else f"{ns}.{t}"
    return None
