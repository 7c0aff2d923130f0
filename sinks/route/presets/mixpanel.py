"""Mixpanel Import API, ``POST /import?strict=1`` with a JSON array of ``{"event", "properties"}``. Attribution
travels as event properties: Mixpanel's own ``utm_*`` (the event's touch) and ``install_*`` (the first touch).
User-profile ``$set_once`` needs the separate /engage API, which this preset does not call.

Docs: https://docs.mixpanel.com/reference/import-events (format, auth, limits, strict mode)
      https://docs.mixpanel.com/troubleshooting/errors/400-bad-request (failed_records, distinct_id, $insert_id, time)
      https://docs.mixpanel.com/troubleshooting/errors/429-rate-limit-exceeded (no Retry-After: back off)
- Endpoint: https://api.mixpanel.com/import (EU https://api-eu.mixpanel.com, India https://api-in.mixpanel.com).
- Auth: HTTP Basic with a service account (user:secret, plus ``project_id`` in the query) or the project token as
  user name with an empty password.
- Limits: 2000 events and 2 MB uncompressed per request (the newer reference allows 10 MB; we keep the older,
  stricter figure); < 255 properties per event, < 255 keys per nested object and elements per list; time ≥ 1971
  and ≤ 1 h ahead; ~2 GB/min per project, else 429.
- Answers (strict=1): 400 = partial success — ``failed_records[{index, insert_id, field, message}]`` name the refused
  events (dead-lettered), the others were ingested; 401/403 whole request; 413 split; 429/5xx retry.
- Identity: distinct_id = the customer user id (also ``$user_id``); anonymous: ``$device_id`` = a device id and
  distinct_id ``$device:<id>`` (simplified ID merge). Placeholder ids (anon, null, …) count as none.
- Dedupe: ``$insert_id`` (≤ 36 characters of [A-Za-z0-9-]) = the event id (or a digest of it).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlencode

from attrib.settings import PresetSettings
from sinks.route.presets import mapping as m
from sinks.route.presets.base import (
    Preset,
    Records,
    Rejected,
    Request,
    Skip,
    customer_id,
    device_id,
    epoch_ms,
    props,
    revenue,
    short_id,
)

MIN_TIME_MS = 31_536_000_000  # 1971-01-01
MAX_AHEAD_MS = 3_600_000
MAX_KEYS = 255


def _too_big(v: Any) -> bool:
    if isinstance(v, dict):
        return len(v) >= MAX_KEYS or any(_too_big(x) for x in v.values())
    if isinstance(v, list):
        return len(v) >= MAX_KEYS or any(_too_big(x) for x in v)
    return False


class Mixpanel(Preset):
    kind = "mixpanel"
    docs = ("https://docs.mixpanel.com/reference/import-events",
            "https://docs.mixpanel.com/troubleshooting/errors/400-bad-request")
    max_cost = 2000
    max_bytes = 2_000_000
    max_record_bytes = 1_000_000
    hosts: ClassVar[Mapping[str, str]] = {"us": "https://api.mixpanel.com", "eu": "https://api-eu.mixpanel.com", "in": "https://api-in.mixpanel.com"}
    path = "/import"
    roots = ("properties",)
    default_mapping: ClassVar[Mapping[str, str]] = {
        "properties.utm_source": "attribution.media_source", "properties.utm_medium": "attribution.channel",
        "properties.utm_campaign": "attribution.campaign", "properties.utm_content": "attribution.ad",
        "properties.utm_term": "attribution.ad_set",
        "properties.install_partner": m.FIRST["partner"], "properties.install_campaign": m.FIRST["campaign"],
    }
    rest_after_partial_4xx = "ok"  # Mixpanel ingests the events a 400 doesn't name

    def problems(self, opts: PresetSettings) -> list[str]:
        out = super().problems(opts)
        service = (opts.service_account, opts.service_secret, opts.project_id)
        if any(service) and not all(service):
            out.append("preset.service_account, preset.service_secret and preset.project_id: all three or none")
        elif not any(service) and not opts.project_token:
            out.append("preset.project_token (or a service account): required for kind mixpanel")
        return out

    def url(self, opts: PresetSettings) -> str:
        q = {"strict": "1", **({"project_id": opts.project_id} if opts.service_account else {})}
        return super().url(opts) + "?" + urlencode(q)

    def headers(self, opts: PresetSettings) -> dict[str, str]:
        if opts.service_account and opts.service_secret:
            cred = f"{opts.service_account}:{opts.service_secret.get_secret_value()}"
        else:
            cred = f"{opts.project_token.get_secret_value() if opts.project_token else ''}:"
        return {"Content-Type": "application/json",
                "Authorization": "Basic " + base64.b64encode(cred.encode()).decode()}

    def records(self, record: dict[str, Any], view: dict[str, Any], opts: PresetSettings,
                mapping: dict[str, str]) -> Records:
        who: dict[str, str] = {}
        dev = device_id(record) if opts.anonymous else None
        if cid := customer_id(record):
            who = {"distinct_id": cid, "$user_id": cid}
        elif dev:
            who = {"distinct_id": f"$device:{dev}"}
        else:
            raise Skip("no_identity")
        if dev:
            who["$device_id"] = dev
        t = epoch_ms(record["event_time"])
        if not MIN_TIME_MS <= t <= time.time() * 1000 + MAX_AHEAD_MS:
            raise Rejected("time_out_of_range", f"event time {t} ms: Mixpanel takes 1971 … now + 1 h")
        parts = m.apply(view, mapping)
        p: dict[str, Any] = {**props(view), **parts.get("properties", {}), "time": t,
                             "$insert_id": short_id(record["event_id"], 36, r"[A-Za-z0-9-]+"), **who}
        for ours, theirs in (("platform", "$os"), ("os_version", "$os_version"),
                             ("app_version", "$app_version_string")):
            if record.get(ours):
                p[theirs] = record[ours]
        if (rev := revenue(record)) is not None:
            p["revenue"] = rev
            if record.get("currency"):
                p["currency"] = record["currency"]
        if _too_big(p):
            raise Rejected("too_many_properties", f"Mixpanel takes < {MAX_KEYS} properties, keys and list elements")
        return {"events": [{"event": record["event_name"], "properties": p}]}

    def envelope(self, arrays: Records, opts: PresetSettings) -> Any:
        return arrays.get("events", [])

    def failures(self, status: int, body: Any, req: Request) -> dict[int, str]:
        if status != 400 or not isinstance(body, dict):
            return {}
        positions = req.index.get("events", [])
        out: dict[int, str] = {}
        for f in body.get("failed_records") or []:
            i = f.get("index") if isinstance(f, dict) else None
            if isinstance(i, int) and 0 <= i < len(positions):
                out[positions[i]] = f"{f.get('field')}: {f.get('message')}"[:500]
        return out
