"""`attrib send`: realistic signed traffic that the ingress accepts, with duplicates and out-of-order users."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import defaultdict

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
    for _msg, rec in sorted(got, key=lambda mr: (mr[0].partition(), mr[0].offset())):
        if rec["source"] == "lr" and not rec["user_key"].startswith("fp:"):
            firsts.setdefault(rec["user_key"], json.loads(rec["body"]))
    assert any(b.get("event_type") != "install" for b in firsts.values())


def test_a_paced_run_stamps_events_around_their_send_time(monkeypatch):
    """`attrib send --rate`: a user's events are stamped near the time they go out, not all near the start."""
    stamps: list[float] = []
    real = deliveries.render

    def spy(t, user, source, now, rng):  # type: ignore[no-untyped-def]
        stamps.append(now)
        return real(t, user, source, now, rng)

    monkeypatch.setattr(deliveries, "render", spy)
    src = SourceSettings(name="x", mmp="appsflyer", methods=["POST"])
    deliveries.plan(src, 200, seed=1, now=1_800_000_000, spacing_s=10.0)  # 200 deliveries 10 s apart: ~33 min
    assert max(stamps) - 1_800_000_000 > 1500 and min(stamps) >= 1_800_000_000 - 60
    stamps.clear()
    deliveries.plan(src, 200, seed=1, now=1_800_000_000)  # unpaced: all around the start, as before
    assert max(stamps) - 1_800_000_000 < 200
