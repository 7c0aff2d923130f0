"""Vendor presets for `attrib route` destinations (``kind = "segment" | "braze" | "clevertap" | "amplitude" |
"mixpanel"``): each knows its vendor's documented HTTP API — endpoint and region, auth, request shape, batch and
payload limits, which answers are retryable — and where the attribution goes (a mapping table the user can override).

Pure builders per vendor (:mod:`.segment` …, on :mod:`.base`), the delivery on the router's machinery
(:mod:`.delivery`), and what ``attrib route --dry-run`` prints (:mod:`.dryrun`).
"""

from __future__ import annotations

from sinks.route.presets.amplitude import Amplitude
from sinks.route.presets.base import Preset
from sinks.route.presets.braze import Braze
from sinks.route.presets.clevertap import CleverTap
from sinks.route.presets.mixpanel import Mixpanel
from sinks.route.presets.segment import Segment

PRESETS: dict[str, Preset] = {p.kind: p for p in (Segment(), Braze(), CleverTap(), Amplitude(), Mixpanel())}
