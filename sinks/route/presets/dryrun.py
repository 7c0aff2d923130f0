"""`attrib route --dry-run`: what each destination would send for one event, without any network.

The events are two built-in samples — an attributed install, then a purchase by the same user (customer user id and
device id) — or a JSON file of one enriched event (times in epoch ms; missing fields from the purchase sample).
Secrets are masked: auth headers and Amplitude's ``api_key``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from attrib.settings import DestinationSettings
from schemas import avro
from sinks.route import template
from sinks.route import view as view_mod
from sinks.route.presets import PRESETS
from sinks.route.presets.base import Rejected, Skip
from sinks.route.view import event_json

SECRET_HEADERS = frozenset({"authorization", "x-clevertap-passcode"})
T = 1_764_547_200_000  # 2025-12-01T00:00:00Z

SAMPLE: dict[str, Any] = {
    "event_id": "0b7c6a52-5d2e-4b8e-9a53-3f1c2d4e5f60", "mmp": "appsflyer", "source": "appsflyer-main",
    "app_id": "com.example.app", "event_name": "af_purchase", "event_type": "purchase", "event_time": T,
    "received_at": T + 800, "user_key": "appsflyer_id:1733000000000-1234567", "customer_user_id": "user-8812",
    "platform": "ios", "os_version": "18.1", "app_version": "4.2.0", "idfa": None,
    "idfv": "6D0F4C1A-2B3C-4D5E-8F90-A1B2C3D4E5F6", "gaid": None, "android_id": None, "oaid": None,
    "media_source": None, "campaign": None, "campaign_id": None, "ad_set": None, "ad_set_id": None, "ad": None,
    "ad_id": None, "channel": None, "click_id": None, "deep_link": None, "is_organic": False, "touch_type": None,
    "touch_time": None, "revenue": Decimal("9.99"), "currency": "EUR",
    "properties": json.dumps({"sku": "gold_pack", "quantity": 1}), "raw": None,
    "first_touch": {"event_id": "inst-1", "event_type": "install", "event_time": T - 86_400_000,
                    "media_source": "Facebook Ads", "campaign": "Winter Sale", "campaign_id": "238",
                    "ad_set": "UK 18-34", "ad_set_id": "61", "ad": "video_15s", "ad_id": "9", "channel": "Instagram",
                    "click_id": None,
                    "touch_type": "click", "touch_time": T - 86_500_000, "is_organic": False},
    "last_touch": None, "attribution_status": "attributed", "version": 1, "emitted_at": T + 1200,
}


INSTALL: dict[str, Any] = {
    **SAMPLE, "event_id": "5f1e2d3c-4b5a-4697-8877-665544332211", "event_name": "install", "event_type": "install",
    "event_time": T - 86_400_000, "received_at": T - 86_399_000, "revenue": None, "currency": None,
    "properties": "{}", "first_touch": None,
    **{k: v for k, v in SAMPLE["first_touch"].items() if k not in ("event_id", "event_type", "event_time")},
}


def load_events(path: Path | None) -> list[dict[str, Any]]:
    """The samples, or a file's event (missing fields taken from the purchase sample), as `attrib route` decodes
    them."""
    if path is None:
        return [avro.decode(avro.encode("enriched_event", r))[1] for r in (INSTALL, SAMPLE)]
    given = json.loads(path.read_text())
    if isinstance(given.get("properties"), dict):
        given["properties"] = json.dumps(given["properties"])
    if given.get("revenue") is not None:
        given["revenue"] = Decimal(str(given["revenue"]))
    return [avro.decode(avro.encode("enriched_event", {**SAMPLE, **given}))[1]]


def render(d: DestinationSettings, record: dict[str, Any]) -> str:
    view = view_mod.build(record)
    head = f"== {d.name} (kind {d.kind}) — {record['event_type']} {record['event_name']!r}"
    if d.kind == "http":
        try:
            url = template.render_url(d.url, view, d.missing)
            body = None if d.method == "GET" else (template.render_json(d.body, view, d.missing) if d.body
                                                   else json.dumps(event_json(record), ensure_ascii=False))
        except (template.SkipEvent, template.MissingValue) as exc:
            return f"{head}\nnot sent: {exc}"
        return f"{head}\n{d.method} {url.split('?')[0]}{'?…' if '?' in url else ''}\n{_pretty(body)}"
    p = PRESETS[d.kind]
    lines = [head] + [f"! {problem}" for problem in p.problems(d.preset)]
    try:
        item = p.item(record, view, d.preset, p.mapping(d.preset))
    except Skip as s:
        return "\n".join([*lines, f"skipped: {s.reason}"])
    except Rejected as r:
        return "\n".join([*lines, f"dead letter: {r.reason} ({r.detail})"])
    req = p.request([item], d.preset)
    lines.append(f"POST {req.url}")
    lines += [f"{k}: {'***' if k.lower() in SECRET_HEADERS else v}" for k, v in req.headers.items()]
    body = json.loads(req.body)
    if isinstance(body, dict) and "api_key" in body:
        body["api_key"] = "***"
    lines.append(json.dumps(body, ensure_ascii=False, indent=2))
    lines.append(f"(batches of up to {p.batch_cap(d.preset)}, {p.max_bytes} bytes; docs: {', '.join(p.docs)})")
    return "\n".join(lines)


def _pretty(body: str | None) -> str:
    if body is None:
        return "(no body)"
    try:
        return json.dumps(json.loads(body), ensure_ascii=False, indent=2)
    except ValueError:
        return body
