"""Realistic enriched-event traffic for sink tests, plus the truth it implies (computed here, never hard-coded).

A small app portfolio: users install from paid sources or organically, some reinstall, sign up, and purchase in
several currencies over the following days. Some purchases arrive *before* attribution is known (pending, version 1)
and are corrected later (version 2, attributed). Duplicates are exact re-sends of the same record.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from confluent_kafka import Producer

from schemas import avro

SOURCES = [  # (media_source, campaigns, platform-weighted ad sets)
    ("Facebook Ads", ["IN_AppInstall_Jun24", "US_Retarget_Q2"], ["lookalike_1pct", "broad_18_34"]),
    ("googleadwords_int", ["UAC_Android_Purchasers"], ["search_kw_games"]),
    ("tiktok", ["TT_Spark_Summer"], ["creator_boost"]),
]
APPS = ["com.example.shop", "id1234567890"]
DAY0 = datetime(2024, 6, 20, tzinfo=UTC)


def touch(eid: str, t: datetime, ms: str, campaign: str | None, ad_set: str | None) -> dict[str, Any]:
    return {"event_id": eid, "event_type": "install", "event_time": t, "media_source": ms, "campaign": campaign,
            "campaign_id": f"c-{abs(hash(campaign)) % 10**6}", "ad_set": ad_set, "ad_set_id": None, "ad": None,
            "ad_id": None, "channel": None, "click_id": None, "touch_type": "click",
            "touch_time": t - timedelta(minutes=7), "is_organic": False}


def event(eid: str, user: str, app: str, typ: str, t: datetime, *, version: int = 1, status: str = "attributed",
          ft: dict[str, Any] | None = None, platform: str | None = "android", revenue: Decimal | None = None,
          currency: str | None = None, organic: bool = False, own: tuple[str, str] | None = None) -> dict[str, Any]:
    ms = "organic" if organic else (ft["media_source"] if ft else None)
    campaign = ft["campaign"] if ft else None
    if own:  # the MMP's own attribution of this event, which may differ from the user's first touch
        ms, campaign = own
    return {
        "event_id": eid, "mmp": "appsflyer", "source": "af-prod", "app_id": app, "event_name": typ.upper(),
        "event_type": typ, "event_time": t, "received_at": t + timedelta(seconds=3), "user_key": user,
        "customer_user_id": None, "platform": platform, "os_version": "14", "app_version": "3.2.1", "idfa": None,
        "idfv": None, "gaid": None, "android_id": None, "oaid": None, "media_source": ms,
        "campaign": campaign, "campaign_id": None, "ad_set": ft["ad_set"] if ft else None,
        "ad_set_id": None, "ad": None, "ad_id": None, "channel": None, "click_id": None, "deep_link": None,
        "is_organic": organic if (ft or organic) else None, "touch_type": None, "touch_time": None,
        "revenue": revenue, "currency": currency, "properties": '{"city":"Pune"}',
        "raw": {"topic": "raw", "partition": 0, "offset": abs(hash(eid)) % 10**9},
        "first_touch": ft, "last_touch": ft, "attribution_status": status, "version": version,
        "emitted_at": t + timedelta(seconds=4),
    }


@dataclass
class Traffic:
    records: list[dict[str, Any]] = field(default_factory=list)  # in send order, duplicates and corrections included
    final: dict[str, dict[str, Any]] = field(default_factory=dict)  # event_id -> latest version

    def add(self, rec: dict[str, Any]) -> None:
        self.records.append(rec)
        cur = self.final.get(rec["event_id"])
        if cur is None or rec["version"] >= cur["version"]:
            self.final[rec["event_id"]] = rec


def traffic(users: int = 300, seed: int = 7) -> Traffic:
    rnd = random.Random(seed)
    out = Traffic()
    later: list[dict[str, Any]] = []
    for i in range(users):
        user = f"gaid:{rnd.getrandbits(64):016x}" if i % 3 else f"idfv:{rnd.getrandbits(64):016x}"
        app = APPS[i % 2]
        platform = "ios" if user.startswith("idfv") else "android"
        t0 = DAY0 + timedelta(days=rnd.randrange(3), seconds=rnd.randrange(86_400))
        organic = rnd.random() < 0.25
        ft = None
        if not organic:
            ms, camps, sets = SOURCES[rnd.randrange(len(SOURCES))]
            ft = touch(f"{user}-inst", t0, ms, rnd.choice(camps), rnd.choice(sets))
        elif rnd.random() < 0.5:  # the worker records organic installs as an organic first touch, no campaign
            ft = {**touch(f"{user}-inst", t0, "organic", "", ""), "campaign": None, "campaign_id": None,
                  "ad_set": None, "is_organic": True, "touch_type": None}
        status = "organic" if organic else "attributed"
        typ = "reinstall" if rnd.random() < 0.08 else "install"
        if ft:
            ft["event_type"] = typ
        out.add(event(f"{user}-inst", user, app, typ, t0, status=status, ft=ft, platform=platform, organic=organic))
        if rnd.random() < 0.5:
            out.add(event(f"{user}-signup", user, app, "signup", t0 + timedelta(minutes=rnd.randrange(1, 90)),
                          status=status, ft=ft, platform=platform, organic=organic))
        for k in range(rnd.choice([0, 0, 1, 1, 2, 3])):
            t = t0 + timedelta(hours=rnd.choice([1, 5, 20, 30, 70, 150, 200]), minutes=k)
            rev = Decimal(rnd.choice(["0.99", "4.99", "9.99", "19.99"]))
            cur = "EUR" if rnd.random() < 0.2 else "USD"
            eid = f"{user}-p{k}"
            if ft and rnd.random() < 0.3:  # purchase seen before the install: pending, then corrected
                out.add(event(eid, user, app, "purchase", t, status="pending_timeout", platform=platform,
                              revenue=rev, currency=cur))
                if rnd.random() < 0.8:  # most get their attribution later; the rest stay pending
                    later.append(event(eid, user, app, "purchase", t, version=2, status=status, ft=ft,
                                       platform=platform, revenue=rev, currency=cur))
            else:  # organic users' purchases sometimes carry a network's own (re-engagement) attribution
                own = ("googleadwords_int", "iOS_tCPA_Purchase_US") if organic and rnd.random() < 0.4 else None
                out.add(event(eid, user, app, "purchase", t, status=status, ft=ft, platform=platform,
                              revenue=rev, currency=cur, organic=organic, own=own))
        if rnd.random() < 0.1:  # never attributed
            out.add(event(f"{user}-open", user, app, "open", t0 + timedelta(hours=2), status="unattributed",
                          platform=platform))
    for rec in rnd.sample(out.records, k=len(out.records) // 10):  # exact re-sends
        out.add(dict(rec))
    for rec in later:
        out.add(rec)
    return out


def produce(bootstrap: str, topic: str, records: list[dict[str, Any]], name: str = "enriched_event") -> None:
    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5,
                  "enable.idempotence": True})
    for rec in records:
        p.produce(topic, key=rec.get("user_key", "").encode(), value=avro.encode(name, rec))
        p.poll(0)
    assert p.flush(30) == 0


def truth_rollups(final: dict[str, dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """What daily_rollups must hold: the same grouping the sink's rebuild uses, computed in Python."""
    out: dict[tuple, dict[str, Any]] = defaultdict(lambda: {"installs": 0, "reinstalls": 0, "signups": 0,
                                                           "purchases": 0, "revenue": defaultdict(Decimal),
                                                           "users": set(), "events": 0})
    for e in final.values():
        ft = e["first_touch"] or {}
        src = ft if ft.get("media_source") else e  # the first touch as a whole, else the event's own fields
        key = (e["event_time"].date(), e["app_id"], src["media_source"] or "", src["campaign"] or "",
               src["ad_set"] or "", e["platform"] or "")
        g = out[key]
        g["events"] += 1
        g["users"].add(e["user_key"])
        for typ, col in (("install", "installs"), ("reinstall", "reinstalls"), ("signup", "signups"),
                         ("purchase", "purchases")):
            if e["event_type"] == typ:
                g[col] += 1
        if e["event_type"] == "purchase" and e["revenue"] is not None:
            g["revenue"][e["currency"]] += e["revenue"]
    return out
