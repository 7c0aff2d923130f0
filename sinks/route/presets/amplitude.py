"""Amplitude HTTP V2 API ``POST /2/httpapi`` (default) or Batch Event Upload ``POST /batch`` (``preset.api``); both
take ``{"api_key", "events": [...]}``. The install attribution rides on every event as ``user_properties.$setOnce``
(so the first touch sticks whatever order events arrive in); the event's own touch as event properties.

Docs: https://amplitude.com/docs/apis/analytics/http-v2 (endpoints, regions, limits, 400/413/429 bodies)
      https://amplitude.com/docs/apis/analytics/batch-event-upload (/batch: 20 MB, 1000 events/s per user)
      https://amplitude.com/docs/apis/analytics/http-api-batching-retries (insert_id, retry 429/5xx, resend the rest)
- Endpoint: https://api2.amplitude.com (EU: https://api.eu.amplitude.com) + /2/httpapi or /batch.
- Auth: ``api_key`` in the body.
- Limits: 2000 events per request; 1 MB (HTTP V2) / 20 MB (batch) per request, else 413 (split and resend);
  30 events/s per user or device on HTTP V2, else 429 — pause 30 s. user_id/device_id ≥ 5 characters.
- Answers: 400 names refused events by index (``events_with_invalid_fields`` …): those are dead-lettered, the rest
  resent; 429/5xx retry; insert_id (the event id) makes resending safe for 7 days.
- Identity: user_id = customer user id, device_id = a device id (anonymous users); one is required.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from attrib.settings import PresetSettings
from sinks.route.presets import mapping as m
from sinks.route.presets.base import (
    Preset,
    Records,
    Request,
    Skip,
    customer_id,
    device_id,
    epoch_ms,
    props,
    revenue,
    short_id,
)

MIN_ID_LENGTH = 5
THROTTLE_PAUSE_S = 30.0  # "pause sending events for that user or device for 30 seconds"
_INDEX_KEYS = ("events_with_invalid_fields", "events_with_missing_fields", "events_with_invalid_id_lengths",
               "silenced_events")


class Amplitude(Preset):
    kind = "amplitude"
    docs = ("https://amplitude.com/docs/apis/analytics/http-v2",
            "https://amplitude.com/docs/apis/analytics/batch-event-upload")
    max_cost = 2000
    max_bytes = 1_000_000
    hosts: ClassVar[Mapping[str, str]] = {"us": "https://api2.amplitude.com", "eu": "https://api.eu.amplitude.com"}
    roots = ("event_properties", "user_properties")
    default_mapping: ClassVar[Mapping[str, str]] = {
        "user_properties.$setOnce.install_partner": m.FIRST["partner"],
        "user_properties.$setOnce.install_campaign": m.FIRST["campaign"],
        "user_properties.$setOnce.install_adgroup": m.FIRST["adgroup"],
        "user_properties.$setOnce.install_ad": m.FIRST["ad"],
        "event_properties.media_source": "attribution.media_source",
        "event_properties.campaign": "attribution.campaign",
    }

    def required(self, opts: PresetSettings) -> tuple[str, ...]:
        return ("api_key",)

    def url(self, opts: PresetSettings) -> str:
        base = opts.endpoint or self.hosts[self.region_key(opts.region or "us")]
        return base.rstrip("/") + ("/batch" if opts.api == "batch" else "/2/httpapi")

    def limits(self, opts: PresetSettings) -> tuple[int, int]:
        return self.batch_cap(opts), 20_000_000 if opts.api == "batch" else self.max_bytes

    def records(self, record: dict[str, Any], view: dict[str, Any], opts: PresetSettings,
                mapping: dict[str, str]) -> Records:
        who: dict[str, str] = {}
        if (cid := customer_id(record)) and len(cid) >= MIN_ID_LENGTH:
            who["user_id"] = cid
        if opts.anonymous and (dev := device_id(record)) and len(dev) >= MIN_ID_LENGTH:
            who["device_id"] = dev
        if not who:
            raise Skip("no_identity")
        parts = m.apply(view, mapping)
        event: dict[str, Any] = {**who, "event_type": record["event_name"], "time": epoch_ms(record["event_time"]),
                                 "insert_id": short_id(record["event_id"], 100),
                                 "event_properties": {**props(view), **parts.get("event_properties", {})}}
        if parts.get("user_properties"):
            event["user_properties"] = parts["user_properties"]
        for ours, theirs in (("platform", "platform"), ("os_version", "os_version"), ("app_version", "app_version"),
                             ("idfa", "idfa"), ("idfv", "idfv"), ("gaid", "adid"), ("android_id", "android_id")):
            if record.get(ours):
                event[theirs] = record[ours]
        if (rev := revenue(record)) is not None:
            event["revenue"] = rev
            if record.get("currency"):
                event["event_properties"]["currency"] = record["currency"]
        return {"events": [event]}

    def envelope(self, arrays: Records, opts: PresetSettings) -> Any:
        return {"api_key": opts.api_key.get_secret_value() if opts.api_key else "",
                "events": arrays.get("events", [])}

    def failures(self, status: int, body: Any, req: Request) -> dict[int, str]:
        if status != 400 or not isinstance(body, dict):
            return {}
        positions = req.index.get("events", [])
        out: dict[int, str] = {}
        for key in _INDEX_KEYS:
            for fld, idxs in (body.get(key) or {}).items():
                for i in idxs if isinstance(idxs, list) else []:
                    if isinstance(i, int) and 0 <= i < len(positions):
                        out[positions[i]] = f"{body.get('error') or 'invalid'}: {key} {fld}"[:500]
        return out

    def hint(self, status: int, headers: Mapping[str, str], body: Any, now: float) -> float | None:
        given = super().hint(status, headers, body, now)
        return given if given is not None else (THROTTLE_PAUSE_S if status == 429 else None)
