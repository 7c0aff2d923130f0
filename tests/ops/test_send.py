"""`attrib send`: realistic signed traffic that the ingress accepts, with duplicates and out-of-order users."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import sys
from collections import defaultdict
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest

from attrib.settings import SourceSettings
from ops.traffic import deliveries
from ops.traffic.signing import query_string
from schemas.user_key import user_key
from tests.ingest.conftest import SOURCES

MMPS = [("appsflyer", ["POST"]), ("adjust", ["GET"]), ("branch", ["GET", "POST"]), ("linkrunner", ["POST"]),
        ("generic", ["POST"]), ("kochava", ["GET"]), ("tenjin", ["GET"]), ("singular", ["POST"])]


@pytest.mark.parametrize(("mmp", "methods"), MMPS)
def test_plan_users_share_a_key_duplicates_are_identical(mmp, methods):
    src = SourceSettings(name="x", mmp=mmp, methods=methods)
    planned = deliveries.plan(src, 60, duplicates=0.2, out_of_order=0.5, seed=3, now=1_800_000_000)
    assert len(planned) == 60
    keys: dict[int, set[str]] = defaultdict(set)
    for i, p in enumerate(planned):
        ct = p.out.headers.get("Content-Type")
        k = user_key(mmp, p.out.body, query_string(p.out), ct, {})
        assert not k.startswith("fp:"), (p.event_type, k)  # every delivery carries its user's id
        keys[p.user].add(k)
        if p.duplicate:
            assert planned[i - 1].out is p.out  # re-sent right after, byte for byte
        if p.out_of_order:  # a later event moved before its user's install
            assert p.event_type not in deliveries.INSTALL_TYPES and planned[i + 1].user == p.user
    assert keys and all(len(v) == 1 for v in keys.values())  # a user's deliveries meet on one key
    assert len({next(iter(v)) for v in keys.values()}) == len(keys)  # and users differ
    assert any(p.duplicate for p in planned)


def _app(p: deliveries.Planned) -> str | None:
    fields = dict(parse_qsl(p.out.raw_query or "")) | (json.loads(p.out.body) if p.out.body else {})
    return next((str(fields[k]) for k in deliveries.APP_KEYS if fields.get(k)), None)


@pytest.mark.parametrize(("mmp", "methods", "app_id"), [("appsflyer", ["POST"], None), ("adjust", ["GET"], None),
                                                        ("appsflyer", ["POST"], "id42")])
def test_plan_one_users_deliveries_name_one_app(mmp, methods, app_id):
    """The samples come from different apps; a user's install and purchase must land in one (D1/D7 per app)."""
    src = SourceSettings(name="x", mmp=mmp, methods=methods, app_id=app_id)
    apps: dict[int, set[str | None]] = defaultdict(set)
    for p in deliveries.plan(src, 300, out_of_order=0.2, seed=5, now=1_800_000_000):
        apps[p.user].add(_app(p))
    assert all(len(v) == 1 and None not in v for v in apps.values()), apps
    if app_id:
        assert {a for v in apps.values() for a in v} == {app_id}


def test_seeds_never_replay_another_source_or_run():
    """`seed + i` made run 2's first source replay run 1's second; every (seed, source) has its own stream."""
    a, b = (SourceSettings(name=n, mmp="appsflyer", methods=["POST"]) for n in ("af-1", "af-2"))
    users: dict[tuple[int, str], set[str]] = {}
    for seed in range(4):
        for src in (a, b):
            ps = deliveries.plan(src, 30, seed=deliveries.source_seed(seed, src.name), now=1_800_000_000)
            users[(seed, src.name)] = {user_key("appsflyer", p.out.body, "", "application/json", {}) for p in ps}
    seen: set[str] = set()
    for keys in users.values():
        assert not keys & seen
        seen |= keys
    assert deliveries.source_seed(None, "x") is None
    assert deliveries.source_seed(1, "x") == deliveries.source_seed(1, "x")  # still repeatable


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("mmp", "methods"), [("appsflyer", ["POST"]), ("adjust", ["GET"]), ("branch", ["POST"]),
                                              ("linkrunner", ["POST"]), ("generic", ["POST"])])
def test_plan_out_of_order_share_is_the_requested_one(mmp, methods, seed):
    """--out-of-order 0.1 means 10 % of the users (that have a later event), not a coin flip that gave 1 in 200."""
    src = SourceSettings(name="x", mmp=mmp, methods=methods)
    planned = deliveries.plan(src, 400, duplicates=0.05, out_of_order=0.1, seed=seed, now=1_800_000_000)
    by_user: dict[int, list[deliveries.Planned]] = defaultdict(list)
    for p in planned:
        if not p.duplicate:
            by_user[p.user].append(p)
    eligible = [u for u, ps in by_user.items() if len(ps) > 1 and any(
        p.event_type not in deliveries.INSTALL_TYPES for p in ps)]
    ooo = sum(p.out_of_order for p in planned)
    assert abs(ooo - 0.1 * len(eligible)) <= 1.5, (ooo, len(eligible))


def test_plan_refuses_a_source_without_usable_samples():
    with pytest.raises(ValueError, match="no adjust sample"):
        deliveries.plan(SourceSettings(name="x", mmp="adjust", methods=["POST"]), 1)


async def test_attrib_send_cli_against_the_ingress(start_ingress):
    ing = await start_ingress()
    names = ["lr", "gen", "sw", "st", "br", "adj", "af"]
    env = {**os.environ, "ATTRIB_SOURCES": json.dumps([x for x in SOURCES if x["name"] in names])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ops.cli", "send", "--url", ing.url, *[a for n in names for a in ("--source", n)],
        "--count", "20", "--duplicates", "0.2", "--out-of-order", "0.5", "--concurrency", "1", "--seed", "11",
        "--json", "--no-progress", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    summary = json.loads(out.decode().strip().splitlines()[-1])
    assert summary["statuses"] == {"200": 20 * len(names)}
    assert summary["duplicates"] > 0 and summary["out_of_order"] > 0
    got = ing.consume(20 * len(names))
    assert len(got) == 20 * len(names)
    assert {rec["source"] for _, rec in got} == set(names)
    bodies: defaultdict[tuple[str, bytes, str], int] = defaultdict(int)
    for _, rec in got:
        bodies[(rec["source"], rec["body"], rec["query_string"])] += 1
    assert sum(n - 1 for n in bodies.values()) >= summary["duplicates"]  # every retry stored as well
    # out of order: some linkrunner user's first stored delivery (by offset on its partition) is not its install
    firsts: dict[str, dict] = {}
    for _, rec in sorted(got, key=lambda mr: (mr[0].partition(), mr[0].offset())):
        if rec["source"] == "lr" and not rec["user_key"].startswith("fp:"):
            firsts.setdefault(rec["user_key"], json.loads(rec["body"]))
    assert any(b.get("event_type") != "install" for b in firsts.values())


async def test_attrib_send_keeps_each_users_order_and_runs_do_not_overlap(start_ingress):
    """--out-of-order reaches Kafka as planned at any concurrency (a user's deliveries go out one after another),
    and a second run with the next seed sends new users, not the first run's second source again."""
    ing = await start_ingress()
    env = {**os.environ, "ATTRIB_SOURCES": json.dumps([x for x in SOURCES if x["name"] in ("gen", "gen64")])}

    async def send(seed: int) -> dict:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ops.cli", "send", "--url", ing.url, "--source", "gen", "--source", "gen64",
            "--count", "60", "--out-of-order", "0.6", "--concurrency", "32", "--seed", str(seed), "--json",
            "--no-progress", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()[-2000:]
        return json.loads(out.decode().strip().splitlines()[-1])

    first = await send(1)
    run1 = ing.consume(120)
    assert len(run1) == 120
    firsts: dict[str, dict] = {}
    for _, rec in sorted(run1, key=lambda mr: (mr[0].partition(), mr[0].offset())):
        firsts.setdefault(rec["user_key"], json.loads(rec["body"]))
    stored_out_of_order = sum(b["event_name"] != "install" for b in firsts.values())
    assert first["out_of_order"] > 5 and stored_out_of_order == first["out_of_order"]

    await send(2)
    both = ing.consume(240)
    assert len(both) == 240
    seen1 = {(m.partition(), m.offset()) for m, _ in run1}
    keys1 = {rec["user_key"] for _, rec in run1}
    keys2 = {rec["user_key"] for m, rec in both if (m.partition(), m.offset()) not in seen1}
    assert keys2 and not keys1 & keys2


def _event_time(p: deliveries.Planned) -> float:
    """AppsFlyer's ``event_time`` (UTC, ms) of a planned delivery, as the ingress will read it."""
    raw = json.loads(p.out.body)["event_time"]
    return datetime.strptime(raw, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_paced_run_stamps_each_delivery_at_its_send_time_never_after(seed):
    """`attrib send --rate`: the event time in the body is the delivery's planned send moment (its slot x spacing);
    only an install sent after its own purchase (out of order) is stamped earlier, just before that purchase. A
    user's events keep their order in event time; a duplicate carries its original's time."""
    src = SourceSettings(name="x", mmp="appsflyer", methods=["POST"])
    now, spacing = 1_800_000_000, 10.0
    planned = deliveries.plan(src, 300, duplicates=0.1, out_of_order=0.3, seed=seed, now=now, spacing_s=spacing)
    by_user: dict[int, list[tuple[str, float]]] = defaultdict(list)
    for i, p in enumerate(planned):
        t, sent = _event_time(p), now + i * spacing
        assert t <= sent + 1e-3, (i, t - sent)  # never stamped after it goes out
        moved = p.event_type in deliveries.INSTALL_TYPES and i > 0 and any(
            q.out_of_order and q.user == p.user for q in planned[max(0, i - 2):i])
        if not p.duplicate and not moved:
            assert abs(t - sent) < 1e-3, (i, t - sent)
        if not p.duplicate:
            by_user[p.user].append((p.event_type, t))
    assert planned[-1].out.body and _event_time(planned[-1]) - now > 2900  # 300 deliveries 10 s apart
    ooo = 0
    for evs in by_user.values():
        installs = [t for e, t in evs if e in deliveries.INSTALL_TYPES]
        later = [t for e, t in evs if e not in deliveries.INSTALL_TYPES]
        if installs and later:
            assert installs[0] < min(later) <= installs[0] + 30 * 60  # the install first in event time
            ooo += evs[0][0] not in deliveries.INSTALL_TYPES
    assert ooo > 0  # some purchases were sent before their install


def test_an_unpaced_run_stamps_everything_at_the_start_in_each_users_order():
    src = SourceSettings(name="x", mmp="appsflyer", methods=["POST"])
    now = 1_800_000_000
    planned = deliveries.plan(src, 200, out_of_order=0.2, seed=1, now=now)
    stamps = [_event_time(p) for p in planned]
    assert all(now - 20 <= t <= now + 1e-3 for t in stamps)


@pytest.mark.parametrize(("mmp", "methods"), MMPS)
def test_every_time_field_of_every_sample_follows_the_stamp(mmp, methods):
    """No sample timestamp survives rendering: every date or epoch in a time field is the delivery's moment, in the
    sample's own format (and, for AppsFlyer's *_selected_timezone, its own offset)."""
    now = 1_800_000_000.25
    src = SourceSettings(name="x", mmp=mmp, methods=methods)
    seen = 0
    for t in deliveries.usable(src):
        out = deliveries.render(t, {}, "x", now, random.Random(1))
        fields = list(parse_qsl(out.raw_query or "")) + list(_leaves(json.loads(out.body) if out.body else {}))
        for key, value in fields:
            if deliveries._TIME_KEY.search(key) and (moment := _moment(value)) is not None:
                seen += 1
                assert abs(moment - now) < 1, (t.sample_id, key, value)
    assert seen


def _leaves(o: object, key: str = "") -> list[tuple[str, object]]:
    if isinstance(o, dict):
        return [kv for k, v in o.items() for kv in _leaves(v, k)]
    if isinstance(o, list):
        return [kv for v in o for kv in _leaves(v, key)]
    return [(key, o)]


def _moment(value: object) -> float | None:
    """The epoch seconds a time-looking value means (None: not a time)."""
    s = str(value)
    if re.fullmatch(r"\d{13}", s):
        return int(s) / 1000
    if re.fullmatch(r"\d{10}", s):
        return float(s)
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d{4})?", s)
    if m is None:
        return None
    tz = m.group(4) or "Z"
    off = 0 if tz == "Z" else (1 if tz[0] == "+" else -1) * (int(tz[1:3]) * 3600 + int(tz[3:]) * 60)
    base = datetime.strptime(f"{m.group(1)} {m.group(2)}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
    return base + float(m.group(3) or 0) - off
