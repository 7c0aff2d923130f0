"""Enriched events for routing tests, built field by field (as the worker would emit them)."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

from schemas import avro

T0 = 1_764_460_800_000  # 2025-11-30T00:00:00Z


def enriched(**over: Any) -> dict[str, Any]:
    props = over.pop("properties", {"city": "Paris"})
    rec: dict[str, Any] = {
        "event_id": uuid.uuid4().hex, "mmp": "branch", "source": "branch-main", "app_id": "app1",
        "event_name": "PURCHASE", "event_type": "purchase", "event_time": T0, "received_at": T0 + 1000,
        "user_key": "idfv:" + uuid.uuid4().hex, "customer_user_id": None, "platform": "ios", "os_version": "17.1",
        "app_version": "2.0", "idfa": None, "idfv": "6D0F0000-0000-0000-0000-000000000000", "gaid": None,
        "android_id": None, "oaid": None, "media_source": None, "campaign": None, "campaign_id": None,
        "ad_set": None, "ad_set_id": None, "ad": None, "ad_id": None, "channel": None, "click_id": None,
        "deep_link": None, "is_organic": False, "touch_type": None, "touch_time": None,
        "revenue": Decimal("12.500000000"), "currency": "EUR", "properties": json.dumps(props),
        "raw": {"topic": "raw", "partition": 0, "offset": 1},
        "first_touch": {"event_id": "inst1", "event_type": "install", "event_time": T0 - 86_400_000,
                        "media_source": "Facebook Ads", "campaign": "Winter Sale", "campaign_id": "c1",
                        "ad_set": None, "ad_set_id": None, "ad": None, "ad_id": None, "channel": "paid",
                        "click_id": None, "touch_type": "click", "touch_time": None, "is_organic": False},
        "last_touch": None, "attribution_status": "attributed", "version": 1, "emitted_at": T0 + 2000,
    }
    rec.update(over)
    return rec


def decoded(**over: Any) -> dict[str, Any]:
    """As `attrib route` sees it: through Avro (datetimes, Decimal)."""
    return avro.decode(avro.encode("enriched_event", enriched(**over)))[1]
