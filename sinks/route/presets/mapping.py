"""Where the attribution travels in a vendor's request: a table ``vendor field → event key path(s)``.

Each preset has a default table (README "Outbound routing" prints them); ``preset.mapping`` in a destination
overrides entries (``"campaign.name" = "attribution.campaign_id"``), adds new ones, or drops one with ``""``.
A source may list fallbacks, ``"first_touch.campaign|attribution.campaign"``: the first present value wins.
Targets are dotted: their first step names the part of the vendor's record (``campaign`` → Segment's
``context.campaign``, ``traits`` → its identify traits …); absent values are left out, never sent as null.
"""

from __future__ import annotations

from typing import Any

from sinks.route.view import MISSING, resolve


def value(view: dict[str, Any], source: str) -> Any:
    for path in source.split("|"):
        got = resolve(view, path.strip())
        if got is not MISSING and got != "":
            return got
    return MISSING


def apply(view: dict[str, Any], table: dict[str, str]) -> dict[str, dict[str, Any]]:
    """``{"campaign.name": "attribution.campaign"}`` → ``{"campaign": {"name": "Winter Sale"}}`` (nested deeper
    when the target has more steps: ``user_properties.$setOnce.install_partner``)."""
    out: dict[str, dict[str, Any]] = {}
    for target, source in table.items():
        v = value(view, source)
        if v is MISSING:
            continue
        root, *steps = target.split(".")
        cur = out.setdefault(root, {})
        for s in steps[:-1]:
            cur = cur.setdefault(s, {})
        cur[steps[-1]] = v
    return out


# First-touch (install) attribution with the event's own as fallback, so an install event carries its own touch.
FIRST = {
    "partner": "first_touch.media_source|attribution.media_source",
    "campaign": "first_touch.campaign|attribution.campaign",
    "campaign_id": "first_touch.campaign_id|attribution.campaign_id",
    "adgroup": "first_touch.ad_set|attribution.ad_set",
    "ad": "first_touch.ad|attribution.ad",
    "channel": "first_touch.channel|attribution.channel",
}
