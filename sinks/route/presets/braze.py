"""Braze ``POST /users/track``: custom ``attributes`` (install attribution, on install-type events) and ``events``.

Docs: https://www.braze.com/docs/api/endpoints/user_data/post_user_track/ (request, responses)
      https://www.braze.com/docs/api/api_limits/ (rate limit, batching, X-RateLimit-* headers)
      https://www.braze.com/docs/api/objects_filters/event_object/ (event object, property rules)
      https://www.braze.com/docs/api/errors/ (fatal errors)
- Endpoint: the instance's REST URL, e.g. https://rest.iad-01.braze.com (US-01), https://rest.fra-01.braze.eu (EU-01).
- Auth: ``Authorization: Bearer <REST API key>`` (permission users.track).
- Limits: 75 events, 75 attributes and 75 purchases per request; 3000 requests per 3 s; 429 when over, with
  ``X-RateLimit-Reset`` (epoch seconds). Property names ≤ 255 characters without a leading ``$``; string values
  ≤ 255 characters; properties with objects/arrays ≤ 50 KB.
- Answers: 2xx ``{"message": "success", "errors": [{"type", "input_array", "index"}]}`` names refused objects
  (non-fatal); 4xx = fatal for the whole request; 5xx = retry.
- Identity: ``external_id`` (customer user id); without one, a ``user_alias`` on the device id, created by an
  attributes object with ``_update_existing_only: false`` (Braze processes attributes before events).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from attrib.settings import PresetSettings
from sinks.route.presets import mapping as m
from sinks.route.presets.base import (
    FIRST_TOUCH_TYPES,
    Preset,
    Records,
    Request,
    Skip,
    customer_id,
    device_id,
    iso,
    props,
    revenue,
)

ALIAS_LABEL = "attrib_device_id"
MAX_TEXT = 255


def clean(properties: dict[str, Any]) -> dict[str, Any]:
    """Braze's property rules: names non-empty, ≤ 255 characters, no leading ``$``; strings ≤ 255 characters."""
    out: dict[str, Any] = {}
    for k, v in properties.items():
        key = str(k).lstrip("$")[:MAX_TEXT]
        if not key or v is None:
            continue
        out[key] = v[:MAX_TEXT] if isinstance(v, str) else v
    return out


class Braze(Preset):
    kind = "braze"
    docs = ("https://www.braze.com/docs/api/endpoints/user_data/post_user_track/",
            "https://www.braze.com/docs/api/api_limits/")
    max_cost = 75
    max_bytes = 4_000_000  # not documented; 75 objects of ≤ 50 KB stay well below
    max_record_bytes = 50_000
    hosts: ClassVar[Mapping[str, str]] = {**{f"us-0{i}": f"https://rest.iad-0{i}.braze.com" for i in range(1, 9)},
             "us-10": "https://rest.us-10.braze.com", "eu-01": "https://rest.fra-01.braze.eu",
             "eu-02": "https://rest.fra-02.braze.eu", "au-01": "https://rest.au-01.braze.com",
             "id-01": "https://rest.id-01.braze.com"}
    path = "/users/track"
    roots = ("attributes", "properties")
    default_mapping: ClassVar[Mapping[str, str]] = {
        "attributes.install_partner": m.FIRST["partner"], "attributes.install_campaign": m.FIRST["campaign"],
        "attributes.install_adgroup": m.FIRST["adgroup"], "attributes.install_ad": m.FIRST["ad"],
        "properties.media_source": "attribution.media_source", "properties.campaign": "attribution.campaign",
    }

    def required(self, opts: PresetSettings) -> tuple[str, ...]:
        return ("api_key",)

    def problems(self, opts: PresetSettings) -> list[str]:
        out = super().problems(opts)
        if not opts.region and not opts.endpoint:
            out.append(f"preset.region: required for kind braze (your instance: {', '.join(sorted(self.hosts))}) "
                       "or preset.endpoint (its REST URL)")
        return out

    def headers(self, opts: PresetSettings) -> dict[str, str]:
        key = opts.api_key.get_secret_value() if opts.api_key else ""
        return {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}

    def records(self, record: dict[str, Any], view: dict[str, Any], opts: PresetSettings,
                mapping: dict[str, str]) -> Records:
        who: dict[str, Any]
        if cid := customer_id(record):
            who = {"external_id": cid}
        elif opts.anonymous and (dev := device_id(record)):
            who = {"user_alias": {"alias_name": dev, "alias_label": ALIAS_LABEL}}
        else:
            raise Skip("no_identity")
        parts = m.apply(view, mapping)
        properties = {**props(view), **parts.get("properties", {})}
        if (rev := revenue(record)) is not None:
            properties["revenue"] = rev
            if record.get("currency"):
                properties["currency"] = record["currency"]
        event = {**who, "name": record["event_name"][:MAX_TEXT], "time": iso(record["event_time"]),
                 "properties": clean(properties), **({"app_id": opts.app_id} if opts.app_id else {})}
        out: Records = {}
        attrs = clean(parts.get("attributes", {})) if record["event_type"] in FIRST_TOUCH_TYPES else {}
        if "user_alias" in who:  # an alias-only profile exists only once an attributes object creates it
            out["attributes"] = [{**who, "_update_existing_only": False, **attrs}]
        elif attrs:
            out["attributes"] = [{**who, **attrs}]
        out["events"] = [event]
        return out

    def cost(self, recs: Records) -> int:
        return max((len(v) for v in recs.values()), default=0)  # the limit is per array

    def envelope(self, arrays: Records, opts: PresetSettings) -> Any:
        return {k: v for k, v in arrays.items() if v}

    def failures(self, status: int, body: Any, req: Request) -> dict[int, str]:
        if not (200 <= status < 300 and isinstance(body, dict) and isinstance(body.get("errors"), list)):
            return {}
        out: dict[int, str] = {}
        for e in body["errors"]:
            if isinstance(e, dict) and isinstance(e.get("index"), int):
                positions = req.index.get(str(e.get("input_array")), [])
                if 0 <= e["index"] < len(positions):
                    out[positions[e["index"]]] = str(e.get("type") or e)[:500]
        return out

    def hint(self, status: int, headers: Mapping[str, str], body: Any, now: float) -> float | None:
        reset = next((v for k, v in headers.items() if k.lower() == "x-ratelimit-reset"), None)
        try:
            return max(0.0, float(reset) - now) if reset else super().hint(status, headers, body, now)
        except ValueError:
            return super().hint(status, headers, body, now)
