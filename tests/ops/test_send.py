"""`attrib send`: realistic signed traffic that the ingress accepts, with duplicates and out-of-order users."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import defaultdict
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


def test_a_paced_run_stamps_events_around_their_send_time(monkeypatch):
    """`attrib send --rate`: a user's events are stamped near the time they go out, not all near the start."""
    stamps: list[float] = []
    real = deliveries.render

    def spy(t, user, source, now, rng, app_id=None):  # type: ignore[no-untyped-def]
        stamps.append(now)
        return real(t, user, source, now, rng, app_id)

    monkeypatch.setattr(deliveries, "render", spy)
    src = SourceSettings(name="x", mmp="appsflyer", methods=["POST"])
    deliveries.plan(src, 200, seed=1, now=1_800_000_000, spacing_s=10.0)  # 200 deliveries 10 s apart: ~33 min
    assert max(stamps) - 1_800_000_000 > 1500 and min(stamps) >= 1_800_000_000 - 60
    stamps.clear()
    deliveries.plan(src, 200, seed=1, now=1_800_000_000)  # unpaced: all around the start, as before
    assert max(stamps) - 1_800_000_000 < 200
