"""`attrib worker` against the real broker: dedupe, buffering, timeouts and corrections, overflow, rules, dead
letters."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter

from tests.streams.conftest import Reader, generic_body, produce, produce_raw, raw_delivery
from tests.support import free_port

LINKRUNNER_SIGNUP = json.dumps({
    "event_type": "signup", "user_id": "usr_20931", "campaign_id": "ORGANIC", "network_name": "ORGANIC",
    "app_version": "2.4.1", "attributed_on": "2024-10-22T19:45:03.007Z", "installed_at": "2024-10-22T19:31:10.742Z",
    "gaid": "9b8a7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
}).encode()


def scrape(port: int) -> dict[str, float]:
    """Prometheus text → {metric name: sum over its labels}."""
    out: dict[str, float] = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                base = name.split("{")[0]
                out[base] = out.get(base, 0) + float(value)
    return out


def scrape_until(port, done, proc, limit_s: float = 60):
    end = time.monotonic() + limit_s
    while True:
        mt = scrape(port)
        if done(mt) or time.monotonic() > end or proc.p.poll() is not None:
            return mt
        time.sleep(0.5)


def by_id(records):
    out: dict[str, list[dict]] = {}
    for r in records:
        out.setdefault(r["event_id"], []).append(r)
    return out


def test_worker_dedupes_buffers_times_out_corrects_and_dead_letters(worker_settings, workers):
    s = worker_settings(
        streams={"pending_timeout_s": 4, "max_pending_per_user": 3},
        sources=[{"name": "gen", "mmp": "generic"}, {"name": "lr", "mmp": "linkrunner"},
                 {"name": "rules", "mmp": "generic", "event_allowlist": ["install", "purchase", "signup"],
                  "first_time_only": ["signup"]}])
    now = int(time.time() * 1000)
    g = lambda eid, name, t, cust, **kw: raw_delivery(  # noqa: E731
        "gen", "generic", generic_body(eid, name, now + t, cust, **kw), f"cuid:{cust}", now)
    raws = [
        # the same event id delivered three times
        g("dup-i", "install", 0, "u-dup"), g("dup-i", "install", 0, "u-dup"), g("dup-i", "install", 0, "u-dup"),
        # a byte-identical retry of an MMP without event ids (fingerprinted)
        raw_delivery("lr", "linkrunner", LINKRUNNER_SIGNUP, "gaid:9b8a7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d", now),
        raw_delivery("lr", "linkrunner", LINKRUNNER_SIGNUP, "gaid:9b8a7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d", now),
        # purchases before the install, out of event-time order
        g("ord-p2", "purchase", 20_000, "u-ord", revenue="2.50"), g("ord-p1", "purchase", 10_000, "u-ord"),
        g("ord-i", "install", 0, "u-ord"),
        # more purchases than the per-user buffer holds, no install ever
        *[g(f"ovf-{i}", "purchase", i, "u-ovf") for i in range(5)],
        # allowlist and first-time-only
        g("r-i", "install", 0, "u-rules"), g("r-s1", "signup", 1, "u-rules"), g("r-c", "level_up", 2, "u-rules"),
        g("r-s2", "signup", 3, "u-rules"), g("r-p", "purchase", 4, "u-rules"),
        # a purchase whose install comes after the timeout
        g("late-p", "purchase", 5_000, "u-late"),
    ]
    for r in raws:
        if r["user_key"] == "cuid:u-rules":
            r["source"] = "rules"
    poison = [
        raw_delivery("nope", "generic", b"{}", "cuid:u-poison", now),  # unknown source
        raw_delivery("gen", "generic", b"{not json", "cuid:u-poison", now),  # invalid body
    ]
    produce_raw(s, raws[:8])
    produce(s, [("cuid:u-poison", b"\x00garbage")])
    produce_raw(s, poison + raws[8:] + [g("after-poison", "install", 0, "u-poison")])

    events = Reader(s, s.topics.events)
    dead = Reader(s, s.topics.dead_letters)
    port = free_port()
    w = workers(s, metrics_port=port)
    try:
        want = {"dup-i", "ord-i", "ord-p1", "ord-p2", "r-i", "r-s1", "r-p", "after-poison",
                *(f"ovf-{i}" for i in range(5)), "late-p"}

        def settled(recs):
            ids = by_id(recs)
            other_ids = sum(1 for r in recs if r["user_key"].startswith("gaid:") or r["source"] == "lr")
            timed_out = sum(1 for i in range(5) for r in ids.get(f"ovf-{i}", [])
                            if r["attribution_status"] == "pending_timeout")
            return want <= ids.keys() and len(ids.get("late-p", [])) >= 1 and other_ids >= 1 and timed_out == 3
        events.read_until(settled, "first outputs", proc=w)
        # the install for u-late arrives after its purchase timed out → a corrected version
        produce_raw(s, [g("late-i", "install", 0, "u-late")])
        recs = events.read_until(lambda rs: any(r["event_id"] == "late-p" and r["version"] == 2 for r in rs),
                                 "correction of late-p", proc=w)
        dls = dead.read_until(lambda rs: len(rs) >= 3, "three dead letters", proc=w)
        recs = events.drain()
        metrics = scrape_until(port, lambda mt: mt.get("attrib_worker_dead_letters_total", 0) >= 3, w)
    finally:
        events.close()
        dead.close()

    ids = by_id(recs)
    # duplicates removed
    assert len(ids["dup-i"]) == 1
    lr = [r for r in recs if r["source"] == "lr"]
    assert len(lr) == 1, lr
    # purchase before install → released after it, in event-time order, enriched
    order = [r["event_id"] for r in recs if r["event_id"].startswith("ord-")]
    assert order == ["ord-i", "ord-p1", "ord-p2"]
    for eid in ("ord-p1", "ord-p2"):
        (r,) = ids[eid]
        assert r["attribution_status"] == "attributed" and r["first_touch"]["event_id"] == "ord-i"
        assert r["first_touch"]["media_source"] == "meta" and r["version"] == 1
    assert str(ids["ord-p2"][0]["revenue"]) == "2.500000000"
    # overflow: 3 buffered then timed out, 2 emitted at once unattributed — none dropped
    statuses = Counter(r["attribution_status"] for i in range(5) for r in ids[f"ovf-{i}"])
    assert statuses == {"unattributed": 2, "pending_timeout": 3}
    # timeout then correction with a higher version
    late = sorted(ids["late-p"], key=lambda r: r["version"])
    assert [(r["version"], r["attribution_status"]) for r in late] == [(1, "pending_timeout"), (2, "attributed")]
    assert late[1]["first_touch"]["event_id"] == "late-i" and late[0]["first_touch"] is None
    # allowlist and first-time-only
    assert sorted(r["event_id"] for r in recs if r["source"] == "rules") == ["r-i", "r-p", "r-s1"]
    # poison → dead letters with reason and raw reference; processing went on
    reasons = sorted(d["reason"] for d in dls)
    assert reasons == sorted(["invalid_record", "unknown_source", "invalid_json"]), dls
    assert all(d["raw"]["topic"] == s.topics.raw and d["payload"] for d in dls)
    assert "after-poison" in ids
    assert all(r["raw"] is None or r["raw"]["topic"] == s.topics.raw for r in recs)
    # metrics
    assert metrics["attrib_worker_duplicates_total"] >= 3  # dup-i twice, the linkrunner retry once
    assert metrics["attrib_worker_dead_letters_total"] == 3
    assert metrics["attrib_worker_timeouts_total"] >= 4 and metrics["attrib_worker_corrections_total"] >= 1
    assert metrics["attrib_worker_overflow_total"] == 2 and metrics["attrib_worker_filtered_total"] == 2
    assert metrics["attrib_worker_events_out_total"] >= len(ids)


def test_idle_users_state_is_dropped_by_the_tick_sweep(worker_settings, workers):
    """Plain tables have no TTL: ticks sweep idle users out (a tombstone in the changelog), and an id seen before the
    dedupe window is new again."""
    s = worker_settings(streams={"dedupe_retention_s": 2, "state_retention_s": 3})
    now = int(time.time() * 1000)
    produce_raw(s, [raw_delivery("gen", "generic", generic_body("idle-i", "install", now, "u-idle"), "cuid:u-idle",
                                 now)])
    changelog = Reader(s, f"{s.streams.app_id}-users-changelog")
    events = Reader(s, s.topics.events)
    w = workers(s)
    try:
        events.read_until(lambda rs: len(rs) == 1, "the install", proc=w)
        end = time.monotonic() + 120
        tomb = None
        while tomb is None:  # Reader decodes values, so look at raw messages here
            assert time.monotonic() < end and w.p.poll() is None, w.log_tail()
            for msg in changelog.c.consume(100, 0.5):
                if msg.error() is None and msg.key() == b"cuid:u-idle" and msg.value() is None:
                    tomb = msg
        later = int(time.time() * 1000)
        produce_raw(s, [raw_delivery("gen", "generic", generic_body("idle-i", "install", now, "u-idle"),
                                     "cuid:u-idle", later)])
        recs = events.read_until(lambda rs: len(rs) == 2, "the install again after the window", proc=w)
    finally:
        changelog.close()
        events.close()
    assert [r["event_id"] for r in recs] == ["idle-i", "idle-i"]
    assert "state sweep" in w.log_tail(10**7)
