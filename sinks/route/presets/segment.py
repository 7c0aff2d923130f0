"""Segment HTTP Tracking API, ``POST /v1/batch`` of ``track`` (every event) and ``identify`` (install-type events,
carrying the install attribution as traits).

Docs: https://www.twilio.com/docs/segment/connections/sources/catalog/libraries/server/http-api (auth, batch, limits,
      errors; formerly segment.com/docs/connections/sources/catalog/libraries/server/http-api/)
      https://segment.com/docs/connections/spec/common/ (context.campaign, messageId, anonymousId)
- Endpoint: https://api.segment.io/v1/batch; EU workspaces https://events.eu1.segmentapis.com/v1/batch.
- Auth: HTTP Basic, the source write key as user name and an empty password.
- Limits: 500 KB per batch request, 32 KB per call, at most 2500 calls per batch; ~1000 requests/s per workspace;
  429 carries Retry-After. 400 = payload too large or invalid JSON (the whole request).
- Identity: userId (customer user id) and/or anonymousId (a device id): one is required.
- Dedupe: messageId (< 100 characters) = the event id.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, ClassVar

from attrib.settings import PresetSettings
from sinks.route.presets import mapping as m
from sinks.route.presets.base import (
    FIRST_TOUCH_TYPES,
    Preset,
    Records,
    Skip,
    customer_id,
    device_id,
    iso,
    props,
    revenue,
    short_id,
)


class Segment(Preset):
    kind = "segment"
    docs = ("https://www.twilio.com/docs/segment/connections/sources/catalog/libraries/server/http-api",
            "https://segment.com/docs/connections/spec/common/")
    max_cost = 2500
    max_bytes = 500_000
    max_record_bytes = 32_000
    hosts: ClassVar[Mapping[str, str]] = {"us": "https://api.segment.io", "eu": "https://events.eu1.segmentapis.com"}
    path = "/v1/batch"
    roots = ("campaign", "traits", "properties")
    default_mapping: ClassVar[Mapping[str, str]] = {
        "campaign.source": "attribution.media_source", "campaign.medium": "attribution.channel",
        "campaign.name": "attribution.campaign", "campaign.content": "attribution.ad",
        "campaign.term": "attribution.ad_set",
        "traits.install_partner": m.FIRST["partner"], "traits.install_campaign": m.FIRST["campaign"],
        "traits.install_adgroup": m.FIRST["adgroup"], "traits.install_ad": m.FIRST["ad"],
    }

    def required(self, opts: PresetSettings) -> tuple[str, ...]:
        return ("write_key",)

    def headers(self, opts: PresetSettings) -> dict[str, str]:
        key = opts.write_key.get_secret_value() if opts.write_key else ""
        return {"Content-Type": "application/json",
                "Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}

    def records(self, record: dict[str, Any], view: dict[str, Any], opts: PresetSettings,
                mapping: dict[str, str]) -> Records:
        who: dict[str, str] = {}
        if cid := customer_id(record):
            who["userId"] = cid
        if opts.anonymous and (dev := device_id(record)):
            who["anonymousId"] = dev
        if not who:
            raise Skip("no_identity")
        parts = m.apply(view, mapping)
        ts = iso(record["event_time"])
        mid = short_id(record["event_id"], 90)
        properties = {**props(view), **parts.get("properties", {})}
        if (rev := revenue(record)) is not None:
            properties["revenue"] = rev
            if record.get("currency"):
                properties["currency"] = record["currency"]
        context: dict[str, Any] = {"library": {"name": "attrib-route", "version": "1"}}
        if parts.get("campaign"):
            context["campaign"] = parts["campaign"]
        if record.get("app_version"):
            context["app"] = {"version": record["app_version"]}
        if record.get("platform"):
            context["os"] = {"name": record["platform"], **({"version": record["os_version"]}
                                                            if record.get("os_version") else {})}
        device = {k: v for k, v in (("id", record.get("idfv") or record.get("android_id")),
                                    ("advertisingId", record.get("idfa") or record.get("gaid"))) if v}
        if device:
            context["device"] = device
        calls: list[dict[str, Any]] = []
        if record["event_type"] in FIRST_TOUCH_TYPES and parts.get("traits"):
            calls.append({"type": "identify", "messageId": f"{mid}-identify", "timestamp": ts, **who,
                          "traits": parts["traits"], "context": context})
        calls.append({"type": "track", "messageId": mid, "timestamp": ts, **who, "event": record["event_name"],
                      "properties": properties, "context": context})
        return {"batch": calls}

    def envelope(self, arrays: Records, opts: PresetSettings) -> Any:
        return {"batch": arrays.get("batch", [])}
