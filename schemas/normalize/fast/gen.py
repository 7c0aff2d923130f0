"""The code generator behind the production normalizer: one straight-line Python function per MMP — parse, field
extraction, user key, platform, event id, ``properties`` and the canonical event — generated once per MMP (module
import) and bound once per source to that source's constants (its MMP, name, app id, options, query mapping).

Why generated: what is left of a delivery's cost once JSON decoding, hashing and encoding are C is Python bytecode
per canonical column; a generated function reads each path with inline code into a local, knows statically which
keys it may take, pops what it takes from a copy of the event object as it reads (so ``properties`` needs no second
pass), and writes the canonical event as one dict display: no intermediate dict, no ``used`` set, no per-field call.

Safety: the code text depends only on the MMP modules' own constants (field paths, written with ``repr``); nothing
from configuration or input is ever put in it — a source's values reach the function through its globals.

Semantics are the reference's (schemas/normalize/payload.py): a path is *taken* when it holds a value that is not
null, an object or a list, even when that value reads as absent (``"null"``); a column reads its paths in order and
stops at the first that gives a value; a present-but-invalid value raises ``invalid_field`` naming the path; the
``properties`` remainder drops every taken path (a nested object left empty by it is dropped, one that was empty
kept) and, as the reference's walk compares dotted path strings, a key spelled with the taken path's dots too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from schemas import canonical
from schemas import fields as F
from schemas.errors import INVALID_FIELD, MISSING_FIELD, NormalizeError
from schemas.normalize.fast import plan as P
from schemas.normalize.fast.keys import FLAT, Rule, _cust, _dev, _utf8
from schemas.user_key import CUSTOMER_KIND

# Globals every generated function sees (the per-source ones are added when a source binds it).
BASE_ENV: dict[str, Any] = {
    "isinstance": isinstance, "len": len, "dict": dict, "list": list, "ABSENT": F.ABSENT,
    "PLATFORM_NAMES": canonical._PLATFORM, "TYPE_OF": P.event_type,
    "CANONICAL_ETYPE": canonical.event_type, "JSON_IN_STRING": P.json_in_string, "TEXTF": F.text,
    "BOOLEAN": F.boolean, "REV_CENTS": P.revenue_cents, "str": str, "NormalizeError": NormalizeError,
    "INVALID_FIELD": INVALID_FIELD, "MISSING_FIELD": MISSING_FIELD, "ABSENT_CASES": P.ABSENT_CASES,
    "UTF8": _utf8, "DEVICE_KEY": _dev, "CUSTOMER_KEY": _cust,
    "NO_COLUMNS": dict.fromkeys(canonical.FIELDS),  # every canonical column None, in the schema's order
    "EMPTY": {},  # a missing parent object: only read (copies are made of present ones, to take from)
}


_CONV_NAMES: dict[P.Conv, str] = {P.TEXT: "TEXT", P.DEV: "DEVICE_ID", P.BOOL: "BOOL", P.TIME: "TIME", P.DEC: "DECIMAL",
               P.CUR: "CURRENCY"}


class Gen:
    """Emits one MMP's function body. The MMP module calls ``read``/``peek``/``take``/``line``/``block`` in the
    reference's order (errors name the same field); canonical columns are locals named as the columns."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ind = 2  # inside ``def`` and the per-item loop
        self.env: dict[str, Any] = {}
        self.popped: set[str] = set()  # top-level keys a previous read (in text order) may have popped
        self.parents: dict[tuple[str, ...], str] = {}  # nested object path -> its variable (P0, P1, ...)
        self.taken_parents: set[tuple[str, ...]] = set()
        self.dotted: set[str] = set()  # the nested paths the body may take
        self.types_table: str | None = None
        self.ids_expr: str | None = None
        self.assigned: set[str] = set()  # canonical columns the body assigns (the rest are None)
        self.key_var = False  # the body picks the user-key rule itself (``key_of``)
        self.has_event_id = False
        self._n = 0

    # -- emission -----------------------------------------------------------------------------------------------
    def line(self, *code: str) -> None:
        self.lines += ["    " * self.ind + c for c in code]

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        self.line(header)
        self.ind += 1
        try:
            yield
        finally:
            self.ind -= 1

    def const(self, value: Any, hint: str = "K") -> str:
        """A global name bound to ``value`` (never its text in the code)."""
        for k, v in self.env.items():
            if v is value:
                return k
        name = hint if hint not in self.env and hint not in BASE_ENV else f"{hint}{len(self.env)}"
        self.env[name] = value
        return name

    def ids(self, expr: str) -> None:
        """The fields that identify the event for its fingerprint: evaluated at the end, only when a fingerprint is
        needed (no event id of the MMP's). An MMP whose branches identify events differently assigns ``ids``."""
        assert self.ids_expr is None, "one ids expression per MMP body"
        self.ids_expr = expr

    def assign(self, var: str, expr: str) -> None:
        if var in canonical.FIELDS or var in ("app_id",):
            self.assigned.add(var)
        if var == "event_id":
            self.has_event_id = True
        self.line(f"{var} = {expr}")

    def _tmp(self) -> str:
        self._n += 1
        return f"t{self._n}"

    # -- paths --------------------------------------------------------------------------------------------------
    def _parent(self, chain: tuple[str, ...]) -> str:
        """The variable holding the object at ``chain`` (the empty ``EMPTY`` when missing or not an object),
        resolved once per event object at the top of the loop."""
        var = self.parents.get(chain)
        if var is None:
            if len(chain) > 1:
                self._parent(chain[:-1])
            var = self.parents[chain] = f"P{len(self.parents)}"
        return var

    def _copy(self, chain: tuple[str, ...]) -> str:
        return "C" + self.parents[chain][1:]

    def peek_expr(self, dotted: str) -> str:
        """An expression for the value at ``dotted`` (not taken)."""
        parts = tuple(dotted.split("."))
        if len(parts) == 1:
            return f"d.get({parts[0]!r})"
        return f"{self._parent(parts[:-1])}.get({parts[-1]!r})"

    def peek(self, var: str, dotted: str) -> None:
        self.assign(var, self.peek_expr(dotted))

    def take(self, key: str) -> None:
        """Mark a top-level key taken whatever it holds (the reference's ``consume``)."""
        assert "." not in key, "consume of nested paths is not used by any MMP"
        self.popped.add(key)
        self.line(f"props.pop({key!r}, None)")

    def _take_nested(self, parts: tuple[str, ...]) -> list[str]:
        """Code taking a nested path: popped from a copy of each object on the way (copied on the first take), and
        the same dotted spelling from the level above (the reference compares path strings)."""
        self.dotted.add(".".join(parts))
        out = ["if dots:", f"    props.pop({'.'.join(parts)!r}, None)"]
        for i in range(1, len(parts)):
            chain = parts[:i]
            up, cp = self.parents[chain], self._copy(chain)
            self.taken_parents.add(chain)
            rest = ".".join(parts[i:])
            # a first take of a path deletes (the copy still has it); a later one, or a dotted spelling, pops
            first = i == len(parts) - 1 and ".".join(parts) not in self.popped
            out += [f"if {cp} is None:", f"    {cp} = {up}.copy()",
                    f"del {cp}[{rest!r}]" if first else f"{cp}.pop({rest!r}, None)"]
        self.popped.add(".".join(parts))
        return out

    def _conv(self, conv: P.Conv, var: str, ind: str) -> list[str]:
        """``var = conv(raw)`` for a present, taken value that is not a string."""
        name = self.const(conv, _CONV_NAMES[conv])
        if conv is P.BOOL:
            return [f"{ind}{var} = raw if raw.__class__ is bool else {name}(raw)"]
        return [f"{ind}{var} = {name}(raw)"]

    def _str(self, conv: P.Conv, var: str, ind: str) -> list[str]:
        """``var = conv(raw)`` for a string ``raw``: ``F.text``'s (and ``F.device_id``'s) inline."""
        if conv is not P.TEXT and conv is not P.DEV:
            return self._conv(conv, var, ind)
        lines = [f"{ind}{var} = raw.strip()",
                 f"{ind}if {var} in ABSENT_CASES:",  # len(v) <= MAX and v.lower() in ABSENT, one set lookup
                 f"{ind}    {var} = None"]
        if conv is P.DEV:  # a non-empty id is all zeros only if it starts with one of them
            lines += [f"{ind}elif {var}[0] in '0-' and not {var}.strip('0-'):",  # all zeros (F._ZERO_ID)
                      f"{ind}    {var} = None",
                      f"{ind}else:",
                      f"{ind}    {var} = {var}.lower()"]
        return lines

    def _guard(self, conv: P.Conv, path: str, lines: list[str], ind: str) -> list[str]:
        if conv in (P.TEXT, P.DEV, P.BOOL):  # they never raise
            return lines
        return [f"{ind}try:", *["    " + x for x in lines], f"{ind}except ValueError as exc:",
                f"{ind}    raise NormalizeError(INVALID_FIELD, {path!r}, str(exc)) from None"]

    def _present(self, conv: P.Conv, var: str, path: str, take: list[str], ind: str) -> list[str]:
        """``raw`` holds the path's value: strings first (most values), a null, object or list not taken."""
        i2 = ind + "    "
        if conv is not P.TEXT and conv is not P.DEV:
            return [f"{ind}if raw.__class__ is str or (raw is not None and not isinstance(raw, (dict, list))):",
                    *[i2 + t for t in take], *self._guard(conv, path, self._conv(conv, var, i2), i2),
                    f"{ind}else:", f"{i2}{var} = None"]
        return [f"{ind}if raw.__class__ is str:", *[i2 + t for t in take],
                *self._guard(conv, path, self._str(conv, var, i2), i2),
                f"{ind}elif raw is None or isinstance(raw, (dict, list)):", f"{i2}{var} = None",
                f"{ind}else:", *[i2 + t for t in take],
                *self._guard(conv, path, self._conv(conv, var, i2), i2)]

    def read(self, var: str, conv: P.Conv, *dotted: str) -> None:
        """``var`` = the first of ``dotted``'s paths giving a value (converted), each path read taken."""
        if var in canonical.FIELDS or var == "app_id":
            self.assigned.add(var)
        if var == "event_id":
            self.has_event_id = True
        start = self.ind
        for j, path in enumerate(dotted):
            if j > 0:
                self.line(f"if {var} is None:")
                self.ind += 1
            parts = tuple(path.split("."))
            ind = "    " * (self.ind + 1)
            if len(parts) == 1:
                obj, key = "d", path
                # the first read of a key deletes it from properties as it takes it; a later one pops (it may
                # have been taken already)
                take = [f"del props[{path!r}]"] if path not in self.popped else [f"props.pop({path!r}, None)"]
                self.popped.add(path)
            else:
                obj, key = self._parent(parts[:-1]), parts[-1]
                take = self._take_nested(parts)
            self.line(f"if {key!r} in {obj}:", f"    raw = {obj}[{key!r}]")
            self.lines += self._present(conv, var, path, take, ind)
            self.line("else:", f"    {var} = None")
        self.ind = start

    def branches(self, cond: str, then: Callable[[Gen], None], other: Callable[[Gen], None]) -> None:
        """``if cond: then else: other``, each side completed with None for the columns only the other assigns
        (every column is a local the event display reads)."""
        before = set(self.assigned)
        with self.block(f"if {cond}:"):
            then(self)
        at, ind, got_then = len(self.lines), "    " * (self.ind + 1), self.assigned - before
        self.assigned = set(before)
        with self.block("else:"):
            other(self)
        got_other = self.assigned - before
        self.lines += [f"{ind}{v} = None" for v in sorted(got_then - got_other)]
        self.lines[at:at] = [f"{ind}{v} = None" for v in sorted(got_other - got_then)]
        self.assigned = before | got_then | got_other

    def event_type(self, defaults: dict[str, str] | None = None) -> None:
        """``event_type`` of ``event_name`` (canonical.event_type with the source's options), remembered per source
        (``TYPES``): names repeat on every delivery. One defaults table per MMP, as the cache is keyed by name."""
        table = self.const(defaults, "DEFAULTS") if defaults is not None else "None"
        assert self.types_table in (None, table), "one event-type defaults table per MMP"
        self.types_table = table
        self.assign("event_type", "TYPES.get(event_name)")
        self.line("if event_type is None:", f"    event_type = TYPE_OF(event_name, OPTIONS, {table}, TYPES)")

    def platform(self) -> None:
        """``platform`` through canonical.platform, inline."""
        self.assign("platform", "PLATFORM_NAMES.get(platform.strip().lower()) if platform else None")

    def require(self, var: str, field: str, what: str = "") -> None:
        self.line(f"if {var} is None:",
                  f"    raise NormalizeError(MISSING_FIELD, {field!r}, {what or field + ' is required'!r})")

    def fill(self, cols: tuple[tuple[Any, ...], ...]) -> None:
        """``(column, conv, path, path, …)`` rows read in order into their column locals."""
        for name, conv, *dotted in cols:
            self.read(name, conv, *dotted)

    # -- assembly -----------------------------------------------------------------------------------------------
    def prologue(self) -> list[str]:
        """Per event object: the nested objects the body reads through (pure reads, resolved once)."""
        out = ["        props = d.copy()"]
        if self.dotted:  # a key spelled like a taken nested path goes with it (rare: checked once, in C)
            self.env["DOTTED"] = frozenset(self.dotted)
            out += ["        dots = not DOTTED.isdisjoint(d)"]
        for chain, var in self.parents.items():
            src = f"d.get({chain[0]!r})" if len(chain) == 1 else f"{self.parents[chain[:-1]]}.get({chain[-1]!r})"
            out += [f"        {var} = {src}", f"        if {var}.__class__ is not dict:", f"            {var} = EMPTY"]
        out += [f"        {self._copy(chain)} = None" for chain in self.parents if chain in self.taken_parents]
        return out

    def fold(self) -> list[str]:
        """The copies of objects something was taken from back into ``properties`` (deepest first); emptied ones
        dropped."""
        out = []
        for chain in sorted(self.taken_parents, key=len, reverse=True):
            cp = self._copy(chain)
            if len(chain) == 1:
                into, key = "props", chain[0]
            else:
                into, key = self._copy(chain[:-1]), chain[-1]
            out += [f"if {cp} is not None:", f"    if {cp}:", f"        {into}[{key!r}] = {cp}", "    else:",
                    f"        {into}.pop({key!r}, None)"]
        return out


def _flat_key(rule: Rule) -> list[str]:
    """The user key of a flat MMP (fast/keys.py ``FLAT``), inline: the first id present, read as ``_dev`` /
    ``_cust`` read it (their string case inline, anything else through them)."""
    out = ["who = None"]
    for i, (kind, key) in enumerate(rule):
        ind = "    " if i else ""
        if i:
            out.append("if who is None:")
        if isinstance(key, tuple):
            out += [ind + "v = " + " or ".join(f"d.get({k!r})" for k in key),
                    ind + "if v.__class__ is str:",
                    ind + "    v = v.strip()",
                    ind + "    if v not in ABSENT_CASES and (v.isascii() or UTF8(v)):",
                    ind + f"        who = {CUSTOMER_KIND + ':'!r} + v",
                    ind + "elif v is not None:",
                    ind + "    who = CUSTOMER_KEY(v)"]
        else:
            out += [ind + f"v = d.get({key!r})",
                    ind + "if v.__class__ is str:",
                    ind + "    v = v.strip()",
                    ind + "    if not (v in ABSENT_CASES or (v[0] in '0-' and not v.strip('0-'))):",
                    ind + "        v = v.lower()",
                    ind + "        if v.isascii() or UTF8(v):",
                    ind + f"            who = {kind + ':'!r} + v",
                    ind + "elif v is not None:",
                    ind + f"    who = DEVICE_KEY({kind!r}, v)"]
    return out


def _lines_epilogue(g: Gen, mmp: str) -> list[str]:
    a = g.assigned
    dev = [f for f in ("idfa", "idfv", "gaid", "android_id", "oaid") if f in a]
    ios = " or ".join(f for f in dev if f in ("idfa", "idfv")) or "False"
    android = " or ".join(f for f in dev if f not in ("idfa", "idfv")) or "False"
    out = ["who = key_of(d)" if g.key_var else "who = KEY(d)"] if mmp not in FLAT else _flat_key(FLAT[mmp])
    out += [
           "app_id = (app_id if app_id else DEFAULT_APP)" if "app_id" in a else "app_id = DEFAULT_APP"]
    if "platform" in a:
        out += ["if not platform:",
                f"    platform = 'ios' if {ios} else 'android' if {android} else None"]
    else:
        out += [f"platform = 'ios' if {ios} else 'android' if {android} else None"]
    # the fingerprint and properties encoders (encode.py's), inline on the fast path
    fp = ([f"ids = {g.ids_expr}"] if g.ids_expr else []) + [
          "basis = {'mmp': MMP, 'app_id': app_id, 'who': who, 'fields': ids if ids is not None and who else d}",
          "if fast:",
          "    try:",
          "        event_id = 'fp:' + SHA256(DUMPS(basis, default=str, option=SORT_KEYS)).digest()[:FP_BYTES].hex()",
          "    except TypeError:  # what orjson refuses: the json module's path",
          "        event_id = FINGERPRINT(basis, False)",
          "else:",
          "    event_id = FINGERPRINT(basis, False)"]
    if g.has_event_id:
        out += ["if not event_id:", *["    " + x for x in fp]]
    else:
        out += fp
    out += g.fold()
    out += ["if extra:", "    props['_query'] = extra",
            "user_key = who or FINGERPRINT(d, fast)",
            "if fast:",
            "    try:",
            "        properties = DUMPS(props, default=PROPS_DEFAULT, option=SORT_KEYS).decode()",
            "    except TypeError:",
            "        properties = PROPERTIES(props, False)",
            "else:",
            "    properties = PROPERTIES(props, False)"]
    # canonical.build's rules, on locals
    if "platform" in a:
        out += ["if platform is not None and platform not in PLATFORMS:", "    platform = None"]
    if "is_organic" in a:
        out += ["if is_organic is True and not media_source:", "    media_source = 'organic'"]
    if "revenue" in a:
        out += ["if revenue is not None:", "    revenue = (revenue if revenue.__class__ is Decimal else "
                "Decimal(revenue)).quantize(REV_SCALE)"]
        if "currency" in a:
            out += ["else:", "    currency = None"]
    # The event: a copy of the source's template (every column, None but the source's own) with this event's
    # columns stored into it — a dict display of 35 entries compiles to one insert at a time into a growing dict
    # (BUILD_MAP + MAP_ADD past 16 entries, several resizes), about twice what a copy and the stores cost.
    # A column that is often None is stored only when it is not: the template has None already.
    out += ["ev = TEMPLATE.copy()"]
    for f in canonical.FIELDS:
        if f in _PER_SOURCE or not (f in a or f in _ALWAYS or f in _PER_EVENT):
            continue
        v = _PER_EVENT.get(f, f)
        out += [f"ev[{f!r}] = {v}"] if f in _SET else [f"if {v} is not None:", f"    ev[{f!r}] = {v}"]
    out += ["if clean:",
            "    if app_id.__class__ is str and not app_id.isascii():",
            "        ev['app_id'] = CLEAN_TEXT(app_id)",
            "else:",
            "    CLEAN_ALL(ev)",
            "if not (event_id and event_name and event_type and user_key and MMP and SOURCE):",
            "    REQUIRED(ev)",
            "if event_type not in EVENT_TYPES:",
            "    raise NormalizeError(INVALID_FIELD, 'event_type', f'unknown event type {event_type!r}')",
            "if event_time.__class__ is not int:",
            "    raise NormalizeError(MISSING_FIELD, 'event_time', 'event_time must be epoch milliseconds')",
            "if received_at.__class__ is not int:",
            "    raise NormalizeError(MISSING_FIELD, 'received_at', 'received_at must be epoch milliseconds')",
            "out.append(ev)"]
    return out


# Locals every generated function has whatever the MMP body assigned, and the columns that are the source's.
_ALWAYS = frozenset({"event_id", "app_id", "received_at", "user_key", "platform", "properties"})
_PER_SOURCE = frozenset({"mmp", "source"})  # in the source's TEMPLATE
_PER_EVENT = {"raw": "raw_ref"}
_SET = frozenset({"event_id", "app_id", "event_name", "event_type", "event_time", "received_at", "user_key",
                  "properties"})  # columns an event has (or fails without): stored unconditionally

# What ``bind`` takes per source (schemas/normalize/__init__.py ``Plan``).
SOURCE_NAMES = ("MMP", "SOURCE", "SOURCE_APP", "OPTIONS", "QUERY", "EXTRA_QUERY", "KEY", "TYPES")
_HEAD = """\
def normalize(delivery):
    items, fast, clean, extra = PARSE(QUERY, EXTRA_QUERY, delivery)
    received_at = delivery.get('received_at')
    if received_at.__class__ is not int:  # an aware datetime (as Avro decodes it): exact in timedelta arithmetic
        if received_at.__class__ is DATETIME and received_at.tzinfo is not None:
            received_at = (received_at - EPOCH) // MILLISECOND
        else:
            received_at = MS(received_at)
    ref = delivery.get('raw_ref')
    raw_ref = ({'topic': str(ref['topic']), 'partition': int(ref['partition']), 'offset': int(ref['offset'])}
               if ref is not None and isinstance(ref, dict) else None)
    DEFAULT_APP = delivery.get('app_id') or SOURCE_APP
    out = []
    for d in items:
"""


def generate(name: str, body: Callable[[Gen], None]) -> tuple[str, dict[str, Any]]:
    """The source text of MMP ``name``'s function and the MMP-level globals it needs."""
    g = Gen()
    body(g)
    lines = g.lines
    epilogue = ["        " + e for e in _lines_epilogue(g, name)]
    inner = _HEAD + "\n".join([*g.prologue(), *lines, *epilogue]) + "\n    return out\n"
    # One code object per MMP, its globals one dict per MMP (so the interpreter's global-lookup caches hold); a
    # source's own constants are the arguments of ``bind``, closed over by the function it returns.
    # The source's event template: every column None but the source's own.
    head = f"def bind({', '.join(SOURCE_NAMES)}):\n    TEMPLATE = {{**NO_COLUMNS, 'mmp': MMP, 'source': SOURCE}}\n"
    text = head + "".join(
        "    " + ln if ln else ln for ln in inner.splitlines(keepends=True)) + "    return normalize\n"
    return f"# generated for mmp {name!r}\n" + text, {**BASE_ENV, **g.env}
