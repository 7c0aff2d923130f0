"""Synthetic raw-delivery traffic for tests, benchmarks and demos: several MMPs' body shapes, retried deliveries
(duplicates) and users whose events arrive before their install (out of order)."""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from schemas.user_key import user_key

SOURCES = [{"name": "gen", "mmp": "generic"}, {"name": "af", "mmp": "appsflyer"},
           {"name": "lr", "mmp": "linkrunner"}]
NETWORKS = ["meta", "googleadwords_int", "tiktok", "organic"]


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def _body(mmp: str, uid: int, seq: int, name: str, t: int, net: str, revenue: str | None) -> dict[str, Any]:
    organic = net == "organic"
    if mmp == "generic":
        b: dict[str, Any] = {"event_id": f"g-{uid}-{seq}", "event_name": name, "timestamp": _iso(t),
                             "attribution": {"source": net, "campaign": f"c{uid % 7}"},
                             "user": {"customer_id": f"cu{uid}", "is_organic": organic}}
        if revenue:
            b["revenue"], b["currency"] = revenue, "USD"
        return b
    if mmp == "appsflyer":
        b = {"app_id": "id1234567890", "platform": "ios", "appsflyer_id": f"af-{uid}", "customer_user_id": f"cu{uid}",
             "event_name": {"install": "install", "purchase": "af_purchase", "signup": "af_complete_registration"}.get(
                 name, name),
             "event_time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t / 1000)) + f".{t % 1000:03d}",
             "media_source": "organic" if organic else net, "campaign": f"c{uid % 7}",
             "campaign_type": "organic" if organic else "ua", "event_value": json.dumps({"seq": seq})}
        if revenue:
            b["event_revenue"], b["event_revenue_currency"] = revenue, "USD"
        return b
    # linkrunner: flat body, no event id (fingerprinted by the normalizer)
    return {"event_type": name, "user_id": f"cu{uid}", "network_name": "ORGANIC" if organic else net.upper(),
            "campaign_id": f"c{uid % 7}", "gaid": str(uuid.UUID(int=uid + 1)), "attributed_on": _iso(t),
            "installed_at": _iso(t), "additional_data": {"seq": seq}}


@dataclass
class Traffic:
    raws: list[dict[str, Any]] = field(default_factory=list)  # in delivery order
    unique: list[dict[str, Any]] = field(default_factory=list)  # one per distinct event
    duplicates: int = 0
    out_of_order_users: int = 0


def generate(users: int, events_per_user: int = 4, dup_rate: float = 0.3, ooo_rate: float = 0.1,
             seed: int = 7, now_ms: int | None = None, mmps: tuple[str, ...] = ("generic", "appsflyer", "linkrunner"),
             ) -> Traffic:
    """``users`` users, each one install plus ``events_per_user`` later events; ``dup_rate`` of deliveries are
    retries of earlier ones; ``ooo_rate`` of users have their install delivered after their other events."""
    rnd = random.Random(seed)
    now = now_ms or int(time.time() * 1000)
    src_by_mmp = {s["mmp"]: s["name"] for s in SOURCES}
    per_user: list[list[dict[str, Any]]] = []
    out = Traffic()
    for uid in range(users):
        mmp = mmps[uid % len(mmps)]
        net = rnd.choice(NETWORKS)
        t0 = now - rnd.randint(0, 3_600_000)
        names = ["install"] + [rnd.choice(["purchase", "purchase", "signup", "level_up"])
                               for _ in range(events_per_user)]
        if mmp == "linkrunner":  # linkrunner only sends install/signup-like events with distinct payloads
            names = ["install"] + ["signup" if i == 0 else "purchase" for i in range(events_per_user)]
        evs = []
        for seq, name in enumerate(names):
            rev = f"{rnd.randint(1, 9999) / 100:.2f}" if name == "purchase" else None
            body = json.dumps(_body(mmp, uid, seq, name, t0 + seq * 60_000, net, rev)).encode()
            key = user_key(mmp, body, "", "application/json", {})
            evs.append({"delivery_id": "", "source": src_by_mmp[mmp], "mmp": mmp, "app_id": None, "method": "POST",
                        "path": f"/webhooks/{src_by_mmp[mmp]}", "query_string": "",
                        "headers": {"content-type": "application/json"}, "body": body, "remote_addr": "127.0.0.1",
                        "received_at": now, "user_key": key})
        out.unique += evs
        if rnd.random() < ooo_rate:
            evs = evs[1:] + evs[:1]
            out.out_of_order_users += 1
        per_user.append(evs)
    # interleave users, keeping each user's own order; retries re-send an earlier delivery of the same user
    cursors = [0] * users
    live = list(range(users))
    n_unique = len(out.unique)
    n_dups = int(n_unique * dup_rate / (1 - dup_rate))
    dup_at = set(rnd.sample(range(n_unique + n_dups), n_dups))
    sent: list[dict[str, Any]] = []
    for i in range(n_unique + n_dups):
        if i in dup_at and sent:
            r = dict(rnd.choice(sent[-2000:]))
            out.duplicates += 1
        else:
            if not live:
                break
            j = rnd.randrange(len(live))
            u = live[j]
            r = dict(per_user[u][cursors[u]])
            cursors[u] += 1
            if cursors[u] == len(per_user[u]):
                live[j] = live[-1]
                live.pop()
            sent.append(r)
        r["delivery_id"] = uuid.UUID(int=rnd.getrandbits(128)).hex
        out.raws.append(r)
    return out
