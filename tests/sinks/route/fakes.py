"""Local fake vendor APIs (aiohttp) that check requests against each vendor's documented schema, auth and limits and
answer as the vendor documents, including its partial-failure bodies. The pure ``check_<vendor>`` functions are the
validators; :class:`FakeVendor` serves them and lets a test script answers (429/5xx …) per request.

An event named ``REJECT_ME`` stands for a record the vendor refuses on its own rules (a blocked id, an unknown
product …): the fake answers it with the vendor's per-record error, so tests exercise partial-failure dead letters.
Sources of each rule: the ``docs`` of the matching preset in ``sinks/route/presets``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

REJECT = "REJECT_ME"
PLACEHOLDERS = {"anon", "anonymous", "nil", "none", "null", "n/a", "undefined", "00000000-0000-0000-0000-000000000000"}


@dataclass
class Verdict:
    status: int
    body: Any
    accepted: list[dict[str, Any]] = field(default_factory=list)  # records the vendor stored
    errors: list[str] = field(default_factory=list)  # what the validator refused (request or record level)
    headers: dict[str, str] = field(default_factory=dict)


def _basic(headers: dict[str, str]) -> str | None:
    h = headers.get("Authorization", "")
    if not h.startswith("Basic "):
        return None
    return base64.b64decode(h[6:]).decode()


def _iso_ok(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def _size(v: Any) -> int:
    return len(json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode())


# --- Segment ------------------------------------------------------------------------------------------------------


def check_segment(path: str, query: dict[str, str], headers: dict[str, str], raw: bytes,
                  creds: dict[str, str]) -> Verdict:
    if path != "/v1/batch":
        return Verdict(404, {"error": "not found"}, errors=["path"])
    if _basic(headers) != f"{creds['write_key']}:":
        return Verdict(401, {"error": "invalid write key"}, errors=["auth"])
    if not headers.get("Content-Type", "").startswith("application/json"):
        return Verdict(400, {"error": "content-type"}, errors=["content-type"])
    if len(raw) > 500_000:
        return Verdict(400, {"error": "payload too large"}, errors=["batch > 500KB"])
    try:
        body = json.loads(raw)
    except ValueError:
        return Verdict(400, {"error": "invalid JSON"}, errors=["json"])
    calls = body.get("batch") if isinstance(body, dict) else None
    if not isinstance(calls, list) or not calls or len(calls) > 2500:
        return Verdict(400, {"error": "batch must hold 1..2500 calls"}, errors=["batch size"])
    errors: list[str] = []
    for c in calls:
        if _size(c) > 32_000:
            errors.append("call > 32KB")
        if c.get("type") not in ("identify", "track", "page", "screen", "group", "alias"):
            errors.append(f"type {c.get('type')!r}")
        if not any(isinstance(c.get(k), str) and c[k] for k in ("userId", "anonymousId")):
            errors.append("no_user_anon_id")
        mid = c.get("messageId")
        if not isinstance(mid, str) or not mid or len(mid) >= 100:
            errors.append("messageId")
        if not _iso_ok(c.get("timestamp")):
            errors.append("timestamp")
        if c.get("type") == "track" and not (isinstance(c.get("event"), str) and c["event"]):
            errors.append("track without event")
        if c.get("type") == "track" and not isinstance(c.get("properties"), dict):
            errors.append("properties")
        camp = (c.get("context") or {}).get("campaign")
        if camp is not None and not isinstance(camp, dict):
            errors.append("context.campaign")
    if errors:  # Segment answers 200 and drops bad calls; the fake is stricter so tests see them
        return Verdict(400, {"error": "; ".join(errors[:5])}, errors=errors)
    return Verdict(200, {"success": True}, accepted=calls)


# --- Braze --------------------------------------------------------------------------------------------------------

_BRAZE_IDS = ("external_id", "user_alias", "braze_id", "email", "phone")


def _braze_props(p: Any) -> str | None:
    if p is None:
        return None
    if not isinstance(p, dict):
        return "properties must be an object"
    for k, v in p.items():
        if not k or len(k) > 255 or k.startswith("$"):
            return f"invalid property name {k[:20]!r}"
        if isinstance(v, str) and len(v) > 255:
            return "string property over 255 characters"
    if _size(p) > 50_000 and any(isinstance(v, (dict, list)) for v in p.values()):
        return "properties over 50KB"
    return None


def check_braze(path: str, query: dict[str, str], headers: dict[str, str], raw: bytes, creds: dict[str, str],
                aliases: set[str] | None = None) -> Verdict:
    aliases = set() if aliases is None else aliases
    if path != "/users/track":
        return Verdict(404, {"message": "not found"}, errors=["path"])
    if headers.get("Authorization") != f"Bearer {creds['api_key']}":
        return Verdict(401, {"message": "Invalid API Key"}, errors=["auth"])
    try:
        body = json.loads(raw)
    except ValueError:
        return Verdict(400, {"message": "Bad Request"}, errors=["json"])
    if not isinstance(body, dict) or not set(body) <= {"attributes", "events", "purchases"} or not body:
        return Verdict(400, {"message": "Bad Request"}, errors=["shape"])
    for arr in body.values():
        if not isinstance(arr, list) or len(arr) > 75:
            return Verdict(400, {"message": "Max Input Length Exceeded"}, errors=["> 75 objects"])
    minor: list[dict[str, Any]] = []
    accepted: list[dict[str, Any]] = []
    for i, a in enumerate(body.get("attributes", [])):  # processed first, so events may use the aliases they create
        err = _braze_who(a)
        if err is None and "user_alias" in a:
            if a.get("_update_existing_only") is not False and _alias(a) not in aliases:
                err = "alias-only profile needs _update_existing_only: false"
            else:
                aliases.add(_alias(a))
        if err:
            minor.append({"type": err, "input_array": "attributes", "index": i})
        else:
            accepted.append({"attributes": a})
    for i, e in enumerate(body.get("events", [])):
        err = _braze_who(e)
        if err is None and not (isinstance(e.get("name"), str) and e["name"]):
            err = "event name required"
        if err is None and not _iso_ok(e.get("time")):
            err = "time must be ISO 8601"
        if err is None:
            err = _braze_props(e.get("properties"))
        if err is None and "user_alias" in e and _alias(e) not in aliases:
            err = "user alias not found"
        if err is None and e.get("name") == REJECT:
            err = "provided external_id is blacklisted and disallowed"
        if err:
            minor.append({"type": err, "input_array": "events", "index": i})
        else:
            accepted.append({"events": e})
    out: dict[str, Any] = {"message": "success", "events_processed": len(body.get("events", []))}
    if minor:
        out["errors"] = minor
    return Verdict(201, out, accepted=accepted, errors=[m["type"] for m in minor])


def _alias(o: dict[str, Any]) -> str:
    a = o["user_alias"]
    return f"{a.get('alias_label')}|{a.get('alias_name')}"


def _braze_who(o: Any) -> str | None:
    if not isinstance(o, dict):
        return "object expected"
    ids = [k for k in _BRAZE_IDS if o.get(k)]
    if len(ids) != 1:
        return "exactly one of external_id, user_alias, braze_id, email, phone is required"
    if "user_alias" in ids:
        a = o["user_alias"]
        if not (isinstance(a, dict) and isinstance(a.get("alias_name"), str) and isinstance(a.get("alias_label"), str)):
            return "user_alias needs alias_name and alias_label"
    elif not isinstance(o[ids[0]], str):
        return f"{ids[0]} must be a string"
    return None


# --- CleverTap ----------------------------------------------------------------------------------------------------


def check_clevertap(path: str, query: dict[str, str], headers: dict[str, str], raw: bytes,
                    creds: dict[str, str]) -> Verdict:
    if path != "/1/upload":
        return Verdict(404, {"status": "fail", "error": "not found"}, errors=["path"])
    if (headers.get("X-CleverTap-Account-Id") != creds["account_id"]
            or headers.get("X-CleverTap-Passcode") != creds["passcode"]):
        return Verdict(401, {"status": "fail", "error": "Account Id or Passcode invalid", "code": 401}, errors=["auth"])
    try:
        body = json.loads(raw)
    except ValueError:
        return Verdict(400, {"status": "fail", "error": "invalid JSON"}, errors=["json"])
    d = body.get("d") if isinstance(body, dict) else None
    if not isinstance(d, list) or not d or len(d) > 1000:
        return Verdict(400, {"status": "fail", "error": "d must hold 1..1000 records", "code": 400},
                       errors=["d size"])
    unprocessed, accepted = [], []
    for r in d:
        err = _ct_record(r)
        if err:
            unprocessed.append({"status": "fail", "code": 509, "error": err, "record": r})
        else:
            accepted.append(r)
    status = "success" if not unprocessed else ("partial" if accepted else "fail")
    return Verdict(200, {"status": status, "processed": len(accepted), "unprocessed": unprocessed},
                   accepted=accepted, errors=[u["error"] for u in unprocessed])


def _ct_record(r: Any) -> str | None:
    if not isinstance(r, dict) or r.get("type") not in ("event", "profile"):
        return "type must be event or profile"
    if not (isinstance(r.get("identity"), str) and r["identity"]):
        return "identity required"
    if not isinstance(r.get("ts"), int) or not 0 <= r["ts"] < 10_000_000_000:
        return "ts must be epoch seconds"
    data = r.get("evtData" if r["type"] == "event" else "profileData")
    if not isinstance(data, dict) or (r["type"] == "profile" and not data):
        return "data object required"
    if r["type"] == "event":
        if not (isinstance(r.get("evtName"), str) and r["evtName"]):
            return "evtName required"
        if len(data) > 100:
            return "too many event properties"
        if r["evtName"] == REJECT:
            return "event name not allowed"
    if any(isinstance(v, (dict, list)) or v is None for v in data.values()):
        return "property values must be scalars"
    return None


# --- Amplitude ----------------------------------------------------------------------------------------------------


def check_amplitude(path: str, query: dict[str, str], headers: dict[str, str], raw: bytes,
                    creds: dict[str, str]) -> Verdict:
    if path not in ("/2/httpapi", "/batch"):
        return Verdict(404, {"code": 404, "error": "not found"}, errors=["path"])
    if not headers.get("Content-Type", "").startswith("application/json"):
        return Verdict(400, {"code": 400, "error": "content-type"}, errors=["content-type"])
    if len(raw) > (1_000_000 if path == "/2/httpapi" else 20_000_000):
        return Verdict(413, {"code": 413, "error": "Payload too large"}, errors=["size"])
    try:
        body = json.loads(raw)
    except ValueError:
        return Verdict(400, {"code": 400, "error": "Invalid JSON request body"}, errors=["json"])
    if not isinstance(body, dict) or "api_key" not in body:
        return Verdict(400, {"code": 400, "error": "Request missing required field", "missing_field": "api_key"},
                       errors=["api_key"])
    if body["api_key"] != creds["api_key"]:
        return Verdict(400, {"code": 400, "error": "Invalid API key: " + str(body["api_key"])[:8]}, errors=["auth"])
    events = body.get("events")
    if not isinstance(events, list) or not events:
        return Verdict(400, {"code": 400, "error": "Request missing required field", "missing_field": "events"},
                       errors=["events"])
    if len(events) > 2000:
        return Verdict(413, {"code": 413, "error": "Payload too large"}, errors=["> 2000 events"])
    invalid: dict[str, list[int]] = {}
    missing: dict[str, list[int]] = {}
    for i, e in enumerate(events):
        if not (isinstance(e.get("event_type"), str) and e["event_type"]):
            missing.setdefault("event_type", []).append(i)
        ids = [e.get(k) for k in ("user_id", "device_id") if e.get(k) is not None]
        if not ids:
            missing.setdefault("user_id", []).append(i)
        elif any(not isinstance(x, str) or len(x) < 5 for x in ids):
            invalid.setdefault("user_id", []).append(i)
        if not isinstance(e.get("time"), int):
            invalid.setdefault("time", []).append(i)
        for k in ("event_properties", "user_properties"):
            if k in e and not isinstance(e[k], dict):
                invalid.setdefault(k, []).append(i)
        ops = e.get("user_properties") or {}
        if isinstance(ops, dict) and any(k.startswith("$") and not isinstance(v, dict) for k, v in ops.items()):
            invalid.setdefault("user_properties", []).append(i)
        if "revenue" in e and not isinstance(e["revenue"], (int, float)):
            invalid.setdefault("revenue", []).append(i)
        if e.get("event_type") == REJECT:
            invalid.setdefault("event_type", []).append(i)
    if invalid or missing:
        out: dict[str, Any] = {"code": 400, "error": "Invalid field values on some events"}
        if invalid:
            out["events_with_invalid_fields"] = invalid
        if missing:
            out["events_with_missing_fields"] = missing
        return Verdict(400, out, errors=[f"{k} {v}" for k, v in {**invalid, **missing}.items()])
    return Verdict(200, {"code": 200, "events_ingested": len(events), "payload_size_bytes": len(raw),
                         "server_upload_time": int(time.time() * 1000)}, accepted=events)


# --- Mixpanel -----------------------------------------------------------------------------------------------------


def check_mixpanel(path: str, query: dict[str, str], headers: dict[str, str], raw: bytes,
                   creds: dict[str, str]) -> Verdict:
    if path != "/import":
        return Verdict(404, {"code": 404, "error": "not found"}, errors=["path"])
    user = _basic(headers)
    token_ok = "project_token" in creds and user == f"{creds['project_token']}:"
    sa_ok = "service_account" in creds and user == f"{creds['service_account']}:{creds['service_secret']}" \
        and query.get("project_id") == creds.get("project_id")
    if not (token_ok or sa_ok):
        return Verdict(401, {"code": 401, "error": "Invalid credentials", "status": "Unauthorized"}, errors=["auth"])
    if len(raw) > 2_000_000:
        return Verdict(413, {"code": 413, "error": "request too large", "status": "Payload Too Large"},
                       errors=["size"])
    try:
        events = json.loads(raw)
    except ValueError:
        return Verdict(400, {"code": 400, "error": "invalid JSON", "status": "Bad Request"}, errors=["json"])
    if not isinstance(events, list) or not events or len(events) > 2000:
        return Verdict(400, {"code": 400, "error": "1..2000 events per request", "status": "Bad Request"},
                       errors=["count"])
    strict = query.get("strict") == "1"
    failed, accepted = [], []
    now_ms = time.time() * 1000
    for i, e in enumerate(events):
        p = e.get("properties") if isinstance(e, dict) else None
        err: tuple[str, str] | None = None
        if not (isinstance(e, dict) and isinstance(e.get("event"), str) and e["event"]):
            err = ("event", "'event' must be a non-empty string")
        elif not isinstance(p, dict):
            err = ("properties", "'properties' must be an object")
        elif not isinstance(p.get("time"), int) or not 31_536_000_000 <= p["time"] <= now_ms + 3_600_000:
            err = ("properties.time", "'properties.time' is invalid")
        elif not isinstance(p.get("distinct_id"), str) or p["distinct_id"].lower() in PLACEHOLDERS:
            err = ("properties.distinct_id", "'properties.distinct_id' is invalid")
        elif not (isinstance(p.get("$insert_id"), str) and re.fullmatch(r"[A-Za-z0-9-]{1,36}", p["$insert_id"])):
            err = ("properties.$insert_id", "'properties.$insert_id' is invalid")
        elif len(p) >= 255:
            err = ("properties", "too many properties")
        elif e["event"] == REJECT:
            err = ("event", "event name is blocked")
        if err:
            failed.append({"index": i, "insert_id": (p or {}).get("$insert_id"), "field": err[0], "message": err[1]})
        else:
            accepted.append(e)
    if failed and strict:
        return Verdict(400, {"code": 400, "error": "some data points in the request failed validation",
                             "status": "Bad Request", "num_records_imported": len(accepted),
                             "failed_records": failed}, accepted=accepted, errors=[str(f["message"]) for f in failed])
    return Verdict(200, {"code": 200, "num_records_imported": len(accepted), "status": "OK"}, accepted=accepted)


CHECKS: dict[str, Callable[..., Verdict]] = {"segment": check_segment, "braze": check_braze,
                                             "clevertap": check_clevertap, "amplitude": check_amplitude,
                                             "mixpanel": check_mixpanel}
CREDS: dict[str, dict[str, str]] = {
    "segment": {"write_key": "wk-123"}, "braze": {"api_key": "braze-key"},
    "clevertap": {"account_id": "TEST-123", "passcode": "pass-456"}, "amplitude": {"api_key": "amp-key"},
    "mixpanel": {"project_token": "mp-token"},
}


@dataclass
class Hit:
    path: str
    status: int
    verdict: Verdict
    at: float


@dataclass
class FakeVendor:
    """Serves one vendor's check. ``script(n) -> (status, headers) | None`` overrides the n-th answer (1-based)."""

    kind: str
    script: Callable[[int], tuple[int, dict[str, str]] | None] = lambda n: None
    hits: list[Hit] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _runner: Any = None
    _aliases: set[str] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, req: web.Request) -> web.Response:
        raw = await req.read()
        n = len(self.hits) + 1
        forced = self.script(n)
        if forced is not None:
            status, headers = forced
            v = Verdict(status, {"code": status, "error": "scripted"}, headers=headers)
        else:
            extra = {"aliases": self._aliases} if self.kind == "braze" else {}
            v = CHECKS[self.kind](req.path, dict(req.query), dict(req.headers), raw, CREDS[self.kind], **extra)
            self.accepted.extend(v.accepted)
        self.hits.append(Hit(req.path, v.status, v, time.monotonic()))
        return web.json_response(v.body, status=v.status, headers=v.headers)

    async def start(self) -> FakeVendor:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        await self._runner.cleanup()
