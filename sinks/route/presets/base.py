"""What a vendor preset is: pure functions from one enriched event to the vendor's records (:class:`Item`), from a
batch of items to one HTTP request (:class:`Request`), and from the vendor's answer to a per-event :class:`Outcome`.

No I/O here; :mod:`.delivery` sends with the router's machinery (queue, token bucket, breaker, backoff, dead letters).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from attrib.errors import AttribError, ConfigurationError, Permanent
from attrib.settings import PresetSettings
from sinks.route.policy import RETRYABLE_STATUS, retry_after

Records = dict[str, list[dict[str, Any]]]  # array name in the request body → records one event adds to it

# Event types that carry the install (first-touch) attribution: vendors get profile/user attributes on these.
FIRST_TOUCH_TYPES = frozenset({"install", "reinstall", "reattribution"})
# Ids that mean "nobody" (vendors reject or merge them: Mixpanel lists these, Braze blocks "dummy" ids).
PLACEHOLDER_IDS = frozenset({"", "anon", "anonymous", "nil", "none", "null", "n/a", "na", "undefined", "unknown",
                             "0", "-1", "00000000-0000-0000-0000-000000000000", "lmid", "[object object]", "id"})
DEVICE_FIELDS = ("idfv", "gaid", "android_id", "oaid", "idfa")  # most to least app-scoped
ENVELOPE_BYTES = 512  # room for what wraps the records (keys, api_key …) when packing a request


class Skip(AttribError):
    """Control flow, not a failure: nothing is sent for this event (counted, not dead-lettered), e.g. no identity
    the vendor can key on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Rejected(Permanent):
    """This event can never be accepted as it is (dead-lettered at once, without a request)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Item:
    records: Records
    size: int  # JSON bytes of the records
    cost: int  # what counts towards the vendor's per-request limit


@dataclass(frozen=True)
class Request:
    url: str
    headers: dict[str, str]  # auth included: never logged
    body: bytes
    arrays: Records  # what was sent, per body array
    index: dict[str, list[int]]  # per body array: the item position of each element


@dataclass
class Outcome:
    ok: set[int] = field(default_factory=set)
    retry: set[int] = field(default_factory=set)
    failed: dict[int, str] = field(default_factory=dict)  # item position → the vendor's error
    hint_s: float | None = None  # the vendor's "retry after"
    split: bool = False  # payload too large: send the halves


class Preset:
    """Base of the five presets; subclasses set the class attributes and implement :meth:`records`/:meth:`envelope`."""

    kind = ""
    docs: tuple[str, ...] = ()
    max_cost = 1  # per request: records, or events where the vendor counts per array
    max_bytes = 1 << 20
    max_record_bytes: int | None = None
    hosts: ClassVar[Mapping[str, str]] = {}  # region → base URL
    path = ""
    roots: tuple[str, ...] = ()  # mapping targets this vendor understands ("campaign", "traits" …)
    default_mapping: ClassVar[Mapping[str, str]] = {}
    rest_after_partial_4xx = "retry"  # the events a 4xx didn't name: "retry" (resend) or "ok" (vendor kept them)
    concurrency_cap: int | None = None

    # --- configuration ------------------------------------------------------------------------------------------

    def problems(self, opts: PresetSettings) -> list[str]:
        """Missing or invalid options, as ``preset.<key>: why``."""
        out = [f"preset.{k}: required for kind {self.kind}" for k in self.required(opts) if not getattr(opts, k)]
        if opts.endpoint is None and opts.region is not None and self.region_key(opts.region) not in self.hosts:
            out.append(f"preset.region: {opts.region!r} unknown for {self.kind}; one of {sorted(self.hosts)} "
                       "(or set preset.endpoint)")
        for target in opts.mapping:
            if target.split(".", 1)[0] not in self.roots or "." not in target:
                out.append(f"preset.mapping: {target!r} is not a {self.kind} field; targets start with "
                           f"{', '.join(r + '.' for r in self.roots)}")
        return out

    def required(self, opts: PresetSettings) -> tuple[str, ...]:
        return ()

    def check(self, opts: PresetSettings, name: str) -> None:
        problems = self.problems(opts)
        if problems:
            raise ConfigurationError(f"route.destinations[{name}]: " + "; ".join(problems))

    @staticmethod
    def region_key(region: str) -> str:
        return region.strip().lower()

    def url(self, opts: PresetSettings) -> str:
        base = opts.endpoint or self.hosts[self.region_key(opts.region or next(iter(self.hosts)))]
        return base.rstrip("/") + self.path

    def headers(self, opts: PresetSettings) -> dict[str, str]:
        return {"Content-Type": "application/json"}

    def batch_cap(self, opts: PresetSettings) -> int:
        return min(self.max_cost, opts.batch_size or self.max_cost)

    def mapping(self, opts: PresetSettings) -> dict[str, str]:
        return {k: v for k, v in {**self.default_mapping, **opts.mapping}.items() if v}

    # --- building -----------------------------------------------------------------------------------------------

    def records(self, record: dict[str, Any], view: dict[str, Any], opts: PresetSettings,
                mapping: dict[str, str]) -> Records:
        raise NotImplementedError

    def envelope(self, arrays: Records, opts: PresetSettings) -> Any:
        raise NotImplementedError

    def item(self, record: dict[str, Any], view: dict[str, Any], opts: PresetSettings,
             mapping: dict[str, str]) -> Item:
        recs = self.records(record, view, opts, mapping)
        sizes = [len(dumps(r)) for rs in recs.values() for r in rs]
        if self.max_record_bytes and max(sizes, default=0) > self.max_record_bytes:
            raise Rejected("record_too_large", f"{max(sizes)} bytes > {self.max_record_bytes} per {self.kind} call")
        if sum(sizes) + ENVELOPE_BYTES > self.limits(opts)[1]:
            raise Rejected("record_too_large", f"{sum(sizes)} bytes > {self.max_bytes} per {self.kind} request")
        return Item(recs, sum(sizes) + len(sizes), self.cost(recs))

    def cost(self, recs: Records) -> int:
        return sum(len(v) for v in recs.values())

    def limits(self, opts: PresetSettings) -> tuple[int, int]:
        """(cost, bytes) one request may carry."""
        return self.batch_cap(opts), self.max_bytes

    def fits(self, items: list[Item], nxt: Item, opts: PresetSettings) -> bool:
        cost, size = self.limits(opts)
        return (sum(i.cost for i in items) + nxt.cost <= cost
                and sum(i.size for i in items) + nxt.size + ENVELOPE_BYTES <= size)

    def request(self, items: list[Item], opts: PresetSettings) -> Request:
        arrays: Records = {}
        index: dict[str, list[int]] = {}
        for pos, it in enumerate(items):
            for name, recs in it.records.items():
                arrays.setdefault(name, []).extend(recs)
                index.setdefault(name, []).extend([pos] * len(recs))
        return Request(self.url(opts), self.headers(opts), dumps(self.envelope(arrays, opts)), arrays, index)

    # --- the answer ---------------------------------------------------------------------------------------------

    def outcome(self, status: int, headers: Mapping[str, str], text: str, req: Request, n: int,
                now: float) -> Outcome:
        """``now`` is the wall clock (epoch seconds), for vendors whose hint is a reset time."""
        every = set(range(n))
        body = loads(text)
        if 200 <= status < 300:
            failed = self.failures(status, body, req)
            return Outcome(ok=every - failed.keys(), failed=failed)
        if status == 413 and n > 1:
            return Outcome(split=True)
        if status in RETRYABLE_STATUS:
            return Outcome(retry=every, hint_s=self.hint(status, headers, body, now))
        failed = self.failures(status, body, req)
        if failed:
            rest = every - failed.keys()
            if self.rest_after_partial_4xx == "ok":
                return Outcome(ok=rest, failed=failed)
            return Outcome(retry=rest, failed=failed)
        return Outcome(failed=dict.fromkeys(every, error_text(body, text)))

    def failures(self, status: int, body: Any, req: Request) -> dict[int, str]:
        """Events the vendor named as refused (in a 2xx with partial errors, or in a 4xx)."""
        return {}

    def hint(self, status: int, headers: Mapping[str, str], body: Any, now: float) -> float | None:
        return retry_after(_header(headers, "Retry-After"), 3600.0)


# --- shared helpers ---------------------------------------------------------------------------------------------


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def loads(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def error_text(body: Any, text: str) -> str:
    if isinstance(body, dict):
        for k in ("error", "message", "errors"):
            if body.get(k):
                return str(body[k])[:500]
    return text[:500]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    low = name.lower()
    return next((v for k, v in headers.items() if k.lower() == low), None)


def epoch_ms(v: Any) -> int:
    if isinstance(v, dt.datetime):
        return round(v.timestamp() * 1000)
    return int(v)


def iso(v: Any) -> str:
    t = v if isinstance(v, dt.datetime) else dt.datetime.fromtimestamp(int(v) / 1000, dt.UTC)
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def revenue(record: dict[str, Any]) -> float | None:
    r = record.get("revenue")
    if r is None:
        return None
    f = float(Decimal(r) if not isinstance(r, Decimal) else r)
    return f if f == f and abs(f) != float("inf") else None


def customer_id(record: dict[str, Any]) -> str | None:
    c = record.get("customer_user_id")
    c = c.strip() if isinstance(c, str) else None
    return c if c and c.lower() not in PLACEHOLDER_IDS else None


def device_id(record: dict[str, Any]) -> str | None:
    """The device-scoped id a vendor may key an anonymous user on: the event's own device ids, else a device-kind
    user key (``appsflyer_id:…``); never a delivery fingerprint (``fp:``) or the customer id."""
    for f in DEVICE_FIELDS:
        v = record.get(f)
        if isinstance(v, str) and v.strip() and v.strip().lower() not in PLACEHOLDER_IDS:
            return v.strip()
    kind, _, value = str(record.get("user_key") or "").partition(":")
    if value and kind not in ("fp", "customer_user_id") and value.lower() not in PLACEHOLDER_IDS:
        return value
    return None


def props(view: dict[str, Any]) -> dict[str, Any]:
    p = view.get("properties")
    return dict(p) if isinstance(p, dict) else {}


def short_id(event_id: str, limit: int, allowed: str = "") -> str:
    """The event id when it fits the vendor's id rules, else a stable digest of it (so retries still dedupe)."""
    ok = len(event_id) <= limit and (not allowed or re.fullmatch(allowed, event_id))
    return event_id if ok else hashlib.sha256(event_id.encode()).hexdigest()[:limit]
