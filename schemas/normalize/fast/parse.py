"""A delivery → its event objects, for the compiled normalizer: the reference's parse (schemas/normalize/reference.py
with schemas.user_key.parse_delivery and schemas.templates.query_to_body) with the query mapping resolved once per
source, query strings unquoted only where there is something to unquote, and JSON through msgspec (floats as Decimal,
as schemas.fields.loads) — what msgspec refuses goes to the json module, which decides and words the error."""

from __future__ import annotations

import codecs
import itertools
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import msgspec

from attrib.errors import ForeignErrors
from schemas.errors import EMPTY_BODY, INVALID_JSON, NOT_AN_OBJECT, NormalizeError
from schemas.fields import loads
from schemas.templates import DEFAULT_MAPS, SECRET_PARAMS

MAX_BATCH = 10_000


class Query:
    """A query string → the body dict the MMP would POST (schemas/templates.py ``query_to_body``), the name mapping
    and secret names resolved once per source."""

    def __init__(self, mmp: str, options: dict[str, Any] | None) -> None:
        options = options or {}
        mapping = dict(DEFAULT_MAPS.get(mmp, {}))
        custom = options.get("query_map")
        if isinstance(custom, dict):
            mapping.update({str(k): str(v) for k, v in custom.items()})
        self.mapping = mapping
        extra = options.get("secret_params")
        named = [*(extra if isinstance(extra, list) else [extra]), options.get("url_secret_param")]
        self.secret = SECRET_PARAMS | {p.lower() for p in named if isinstance(p, str)}
        # A name → where its value goes: () (a secret: dropped), a top-level field's name, or (parents, leaf) —
        # resolved once per name, so a parameter costs one dict lookup. Names come from input: the cache is bounded.
        self.where: dict[str, Where] = {}
        self.plain: set[str] = set()  # the names resolved to a top-level field of their own name

    def _resolve(self, name: str) -> Where:
        if name.lower() in self.secret:
            where: Where = ()
        else:
            path = self.mapping.get(name, name)
            if "." in path:
                *parents, leaf = path.split(".")
                where = (tuple(parents), leaf)
            else:
                where = path
        if len(self.where) < _MAX_NAMES:
            self.where[name] = where
            if where == name:
                self.plain.add(name)
        return where

    def body(self, query_string: str) -> dict[str, Any]:
        params = query_dict(query_string)
        if self.plain.issuperset(params):  # every name its own top-level field: the parameters are the body
            return params
        out: dict[str, Any] = {}
        known = self.where
        for k, v in params.items():
            where = known.get(k)
            if where is None:
                where = self._resolve(k)
            if isinstance(where, str):  # most parameters: a top-level field (first wins)
                if where not in out:
                    out[where] = v
            elif where:
                parents, leaf = where
                d = out
                for p in parents:
                    nxt = d.get(p)
                    if not isinstance(nxt, dict):
                        nxt = d[p] = {}
                    d = nxt
                d.setdefault(leaf, v)
        return out


_MAX_NAMES = 4096
Where = str | tuple[tuple[str, ...], str] | tuple[()]


_ESCAPE_DECODE = codecs.escape_decode  # C; undocumented, but in the codecs module since Python 2


def unquote_replace(s: str) -> str:
    """``urllib.parse.unquote(s, errors="replace")`` in C calls for the common case — ASCII with only well-formed
    ``%XX`` escapes: each ``%`` becomes ``\\x`` (backslashes doubled first) for ``codecs.escape_decode``, which refuses
    a ``\\x`` without two hex digits after it (a malformed escape: then urllib, which keeps it as it is)."""
    if s.isascii():
        try:
            raw: bytes = _ESCAPE_DECODE(s.encode().replace(b"\\", b"\\\\").replace(b"%", b"\\x"))[0]
        except ValueError:
            return unquote(s, errors="replace")
        return raw.decode("utf-8", "replace")
    return unquote(s, errors="replace")


def query_dict(query_string: str) -> dict[str, str]:
    """``schemas.fields.query_dict`` (parse_qsl, blanks kept, first wins) without unquoting what has nothing to
    unquote, and with the whole string unquoted at once when no escape spells a separator (``%26`` ``&``, ``%3D``
    ``=``): then unquoting cannot move a boundary — an escape never spans ``&`` or ``=`` (not hex digits), and UTF-8
    decoding never takes an ASCII byte into a broken sequence — so splitting after it gives the same pairs."""
    if "%" in query_string and ("%26" in query_string or "%3D" in query_string or "%3d" in query_string):
        return _query_dict_parts(query_string)
    s = query_string.replace("+", " ") if "+" in query_string else query_string
    if "%" in s:
        s = unquote_replace(s)  # no escape spells a separator here: the separators are the same after
    parts = s.split("&")
    try:
        # All in C: dict() takes each part's split as a pair and refuses any part without exactly one "=" (none:
        # an empty part or a bare name; two: a value holding "=") — then, unless a name repeats (first wins),
        # the pairs are the answer; else the loop below, parse_qsl's rules one part at a time.
        pairs = dict(map(str.split, parts, _EQUALS))
    except ValueError:
        pass
    else:
        if len(pairs) == len(parts):
            return pairs
    out: dict[str, str] = {}
    for part in parts:
        if part:
            k, _, v = part.partition("=")
            if k not in out:
                out[k] = v
    return out


_EQUALS = itertools.repeat("=")  # str.split's separator for every part: map() stops at the shorter iterable


def _query_dict_parts(query_string: str) -> dict[str, str]:
    """``query_dict`` unquoting each name and value on its own."""
    out: dict[str, str] = {}
    for part in query_string.split("&") if query_string else ():
        if not part:
            continue
        k, _, v = part.partition("=")
        if "+" in k:
            k = k.replace("+", " ")
        if "%" in k:
            k = unquote_replace(k)
        if k in out:
            continue
        if "+" in v:
            v = v.replace("+", " ")
        if "%" in v:
            v = unquote_replace(v)
        out[k] = v
    return out


_DECODE = msgspec.json.Decoder(float_hook=Decimal).decode  # exact numbers, as schemas.fields.loads
# The msgspec seam: what it refuses is decided by the json module, whose refusal is a NormalizeError (invalid_json).
FOREIGN_ERRORS: ForeignErrors = {msgspec.DecodeError: (NormalizeError,)}


def parse(query: Query, extra_query: Query, raw: dict[str, Any]) -> tuple[list[dict[str, Any]], bool, bool,
                                                                       dict[str, Any] | None]:
    """The delivery's event objects, whether the fast decoder read them (else the json module did: then the
    encoders take the json module's paths too), whether every string in them is known to be valid Unicode, none
    needing cleaning (msgspec refuses invalid UTF-8 and lone surrogate escapes; a form body is decoded with
    replacement; an ASCII query string unquotes to ASCII or to UTF-8 decoded with replacement), and a body
    delivery's URL parameters (``extra_query``'s body of the query string, kept under ``"_query"``), else None."""
    body = raw.get("body") or b""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    qs = raw.get("query_string") or ""
    headers = raw.get("headers") or {}
    ct = None
    for k, v in headers.items():
        if k.lower() == "content-type":
            ct = v
            break
    stripped = body.strip()
    if not stripped and not qs.strip():
        raise NormalizeError(EMPTY_BODY, None, "no body and no query string")
    fast, clean, extra = True, False, None
    if not stripped:
        value: Any = query.body(qs)
        clean = qs.isascii()  # then every name and value is ASCII or decoded from UTF-8 with replacement
    elif ct and "form-urlencoded" in ct.lower():
        value = query_dict(stripped.decode("utf-8", "replace"))
        clean = True  # decoded with replacement: valid Unicode
    else:
        try:
            value = _DECODE(stripped)
            clean = True
        except (msgspec.DecodeError, RecursionError):  # what msgspec refuses, the json module decides (and words)
            fast = False
            try:
                value = loads(stripped)
            except ValueError as exc:
                raise NormalizeError(INVALID_JSON, None, f"body is not JSON: {exc}") from None
    if stripped and qs:
        extra = extra_query.body(qs)
    if value.__class__ is dict:  # one event object, the common case
        if value:
            return [value], fast, clean, extra
        raise NormalizeError(EMPTY_BODY, None, "empty JSON object")
    items = value if isinstance(value, list) else [value]
    if not items:
        raise NormalizeError(NOT_AN_OBJECT, None, "empty JSON array")
    if len(items) > MAX_BATCH:
        raise NormalizeError(NOT_AN_OBJECT, None, f"batch of {len(items)} events exceeds {MAX_BATCH}")
    for i, it in enumerate(items):
        if not isinstance(it, dict):
            where = f"[{i}]" if isinstance(value, list) else None
            raise NormalizeError(NOT_AN_OBJECT, where, f"expected a JSON object, got {type(it).__name__}")
        if not it:
            raise NormalizeError(EMPTY_BODY, None, "empty JSON object")
    return items, fast, clean, extra
