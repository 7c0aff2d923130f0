"""CleverTap Upload Events/Profiles API, ``POST /1/upload`` with ``{"d": [...]}``: an ``event`` record per event and,
on install-type events, a ``profile`` record carrying the install attribution.

Docs: https://developer.clevertap.com/docs/upload-events-api (body, 1000 records per call)
      https://developer.clevertap.com/docs/common-api-components (regions, headers)
      https://developer.clevertap.com/docs/api-errors (status codes; per-record codes in ``unprocessed``)
      https://developer.clevertap.com/docs/upload-events (15 concurrent requests per account, else 429)
- Endpoint: https://<region>.api.clevertap.com/1/upload — in1, sg1, us1, aps3 (Indonesia), mec1 (UAE);
  Europe (the default) https://api.clevertap.com.
- Auth: headers ``X-CleverTap-Account-Id`` and ``X-CleverTap-Passcode``.
- Limits: 1000 records per request; ≤ 100 properties per event by default; 15 concurrent requests per account.
- Answers: HTTP 200 ``{"status", "processed", "unprocessed": [{"status": "fail", "code", "error", "record"}]}`` —
  a record can fail inside a 200, so the body is read; 4xx = the whole request; 429/5xx = retry.
- Identity: ``identity`` = the customer user id. CleverTap's anonymous id (objectId) is its own SDK's, which we
  don't have: without a customer user id the event is skipped (metric ``attrib_route_preset_skipped``).
- Time: ``ts`` in epoch seconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from attrib.settings import PresetSettings
from sinks.route.presets import mapping as m
from sinks.route.presets.base import (
    FIRST_TOUCH_TYPES,
    Preset,
    Records,
    Rejected,
    Request,
    Skip,
    customer_id,
    epoch_ms,
    error_text,
    props,
    revenue,
)

MAX_PROPERTIES = 100


def scalars(data: dict[str, Any]) -> dict[str, Any]:
    """CleverTap property values are scalars: nested objects/arrays travel as JSON text; nulls are left out."""
    return {str(k): (json.dumps(v, ensure_ascii=False, sort_keys=True) if isinstance(v, (dict, list)) else v)
            for k, v in data.items() if v is not None and str(k)}


class CleverTap(Preset):
    kind = "clevertap"
    docs = ("https://developer.clevertap.com/docs/upload-events-api",
            "https://developer.clevertap.com/docs/common-api-components")
    max_cost = 1000
    max_bytes = 4_000_000  # not documented; 1000 ordinary records stay well below
    hosts: ClassVar[Mapping[str, str]] = {"eu1": "https://api.clevertap.com", "in1": "https://in1.api.clevertap.com",
             "sg1": "https://sg1.api.clevertap.com", "us1": "https://us1.api.clevertap.com",
             "aps3": "https://aps3.api.clevertap.com", "mec1": "https://mec1.api.clevertap.com"}
    path = "/1/upload"
    roots = ("profileData", "evtData")
    default_mapping: ClassVar[Mapping[str, str]] = {
        "profileData.install_partner": m.FIRST["partner"], "profileData.install_campaign": m.FIRST["campaign"],
        "profileData.install_adgroup": m.FIRST["adgroup"], "profileData.install_ad": m.FIRST["ad"],
        "evtData.media_source": "attribution.media_source", "evtData.campaign": "attribution.campaign",
    }
    concurrency_cap = 15

    def required(self, opts: PresetSettings) -> tuple[str, ...]:
        return ("account_id", "passcode")

    def headers(self, opts: PresetSettings) -> dict[str, str]:
        return {"Content-Type": "application/json; charset=utf-8", "X-CleverTap-Account-Id": opts.account_id or "",
                "X-CleverTap-Passcode": opts.passcode.get_secret_value() if opts.passcode else ""}

    def records(self, record: dict[str, Any], view: dict[str, Any], opts: PresetSettings,
                mapping: dict[str, str]) -> Records:
        cid = customer_id(record)
        if not cid:
            raise Skip("no_identity")
        parts = m.apply(view, mapping)
        ts = epoch_ms(record["event_time"]) // 1000
        data = {**props(view), **parts.get("evtData", {})}
        if (rev := revenue(record)) is not None:
            data["revenue"] = rev
            if record.get("currency"):
                data["currency"] = record["currency"]
        data = scalars(data)
        if len(data) > MAX_PROPERTIES:
            raise Rejected("too_many_properties", f"{len(data)} > {MAX_PROPERTIES} event properties for clevertap")
        out = [{"identity": cid, "ts": ts, "type": "event", "evtName": record["event_name"], "evtData": data}]
        profile = scalars(parts.get("profileData", {})) if record["event_type"] in FIRST_TOUCH_TYPES else {}
        if profile:
            out.insert(0, {"identity": cid, "ts": ts, "type": "profile", "profileData": profile})
        return {"d": out}

    def envelope(self, arrays: Records, opts: PresetSettings) -> Any:
        return {"d": arrays.get("d", [])}

    def failures(self, status: int, body: Any, req: Request) -> dict[int, str]:
        if not (200 <= status < 300 and isinstance(body, dict)):
            return {}
        sent, positions = req.arrays.get("d", []), req.index.get("d", [])
        out: dict[int, str] = {}
        unmatched = []
        for u in body.get("unprocessed") or []:
            rec = u.get("record") if isinstance(u, dict) else None
            hit = next((i for i, r in enumerate(sent) if r == rec), None)
            err = f"code {u.get('code')}: {u.get('error')}" if isinstance(u, dict) else str(u)
            if hit is None:
                unmatched.append(err)
            else:
                out[positions[hit]] = err[:500]
        if unmatched or (body.get("status") == "fail" and not out):
            # the vendor refused records we can't tell apart: every event of the request shares the verdict
            return dict.fromkeys(set(positions), "; ".join(unmatched)[:500] or error_text(body, ""))
        return out
