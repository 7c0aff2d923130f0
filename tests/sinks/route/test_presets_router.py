"""`attrib route` with vendor presets, end to end: real Kafka in and out (dead letters), a local fake of each vendor
that validates every request against the vendor's documented schema, auth and limits, and scripted 429/5xx/4xx."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from attrib.settings import DestinationSettings, Settings
from schemas import avro
from sinks.route.metrics import RouteMetrics
from sinks.route.presets import PRESETS
from sinks.route.presets.delivery import PresetDestination
from sinks.route.sender import Failure, Job
from sinks.route.view import build
from tests.sinks.route.events import decoded, enriched
from tests.sinks.route.fakes import CREDS, REJECT, FakeVendor
from tests.sinks.route.test_router import Running, committed, dead_letters, produce, settings_for, until

pytestmark = pytest.mark.timeout(180)


def user_of(kind: str, rec: dict[str, Any]) -> str | None:
    """The user id an accepted vendor record is keyed on (events only, not profiles/identify)."""
    if kind == "segment":
        return rec["userId"] if rec["type"] == "track" else None
    if kind == "braze":
        return rec["events"]["external_id"] if "events" in rec else None
    if kind == "clevertap":
        return rec["identity"] if rec["type"] == "event" else None
    if kind == "amplitude":
        return str(rec["user_id"])
    return str(rec["properties"]["distinct_id"])


def throttle(kind: str) -> dict[str, str]:
    return {"X-RateLimit-Reset": "0"} if kind == "braze" else {"Retry-After": "0"}


@pytest.mark.parametrize("kind", sorted(PRESETS))
async def test_preset_batches_retries_dead_letters_and_skips(kind: str, make_settings: Callable[..., Settings],
        tmp_path: Path) -> None:
    # the first answer is a 503, the second a 429: the batch is retried whole, then validated by the fake
    fake = await FakeVendor(kind, script=lambda n: (503, {}) if n == 1 else (429, throttle(kind)) if n == 2
                            else None).start()
    try:
        s = settings_for(make_settings, tmp_path, [{
            "name": "vendor", "kind": kind, "backoff_initial_s": 0.05, "max_attempts": 5, "concurrency": 1,
            "preset": {**CREDS[kind], "endpoint": fake.url, "batch_wait_s": 0.3}}])
        good = [enriched(customer_user_id=f"user-{uuid.uuid4().hex[:8]}") for _ in range(6)]
        refused = enriched(customer_user_id="user-refused", event_name=REJECT)
        nobody = enriched(customer_user_id=None, idfv=None, user_key="fp:" + uuid.uuid4().hex)
        produce(s, [*good, refused, nobody])
        async with Running(s) as router:
            await until(lambda: router.tracker.in_flight() == 0 and len(fake.hits) >= 3)
            dls = await asyncio.to_thread(dead_letters, s, 0 if kind == "segment" else 1, 15)
            await asyncio.sleep(0.3)  # one more commit interval
        assert [h.status for h in fake.hits[:2]] == [503, 429]
        # the fake found nothing wrong but the one refusal it was told to make (Segment makes none)
        assert sum(len(h.verdict.errors) for h in fake.hits) == (0 if kind == "segment" else 1)
        users = {user_of(kind, r) for r in fake.accepted} - {None}
        want = {g["customer_user_id"] for g in good} | ({"user-refused"} if kind == "segment" else set())
        assert users == want
        sample = router.metrics.registry.get_sample_value
        assert sample("attrib_route_preset_skipped_total", {"destination": "vendor", "reason": "no_identity"}) == 1
        assert sample("attrib_route_sent_total", {"destination": "vendor"}) == len(want)
        if kind == "segment":  # Segment has no per-call refusal: nothing to dead-letter
            assert dls == []
        else:
            assert [(d["reason"], d["stage"]) for d in dls] == [("vendor_rejected", "route")]
            assert avro.decode(dls[0]["payload"])[1]["event_id"] == refused["event_id"]
            detail = json.loads(dls[0]["detail"])
            assert detail["kind"] == kind and detail["response"] and detail["status"] in (200, 201, 400)
        assert committed(s, router.group_id) == 8
    finally:
        await fake.stop()


async def test_wrong_credentials_dead_letter_the_batch_without_opening_the_circuit(
        make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    fake = await FakeVendor("mixpanel").start()
    try:
        s = settings_for(make_settings, tmp_path, [{
            "name": "mp", "kind": "mixpanel", "breaker_failures": 1,
            "preset": {"project_token": "not-the-token", "endpoint": fake.url}}])
        events = [enriched(customer_user_id=f"user-{i}") for i in range(4)]
        produce(s, events)
        async with Running(s) as router:
            dls = await asyncio.to_thread(dead_letters, s, 4)
            await until(lambda: router.tracker.in_flight() == 0)
            assert not router.destinations[0].breaker.is_open
        assert {d["reason"] for d in dls} == {"http_401"} and len(dls) == 4
        assert json.loads(dls[0]["detail"])["response"] == "Invalid credentials"
        assert fake.accepted == [] and {h.status for h in fake.hits} == {401}
    finally:
        await fake.stop()


async def test_persistent_5xx_exhausts_attempts_then_opens_the_circuit(make_settings: Callable[..., Settings],
        tmp_path: Path) -> None:
    fake = await FakeVendor("amplitude", script=lambda n: (500, {})).start()
    try:
        s = settings_for(make_settings, tmp_path, [{
            "name": "amp", "kind": "amplitude", "max_attempts": 2, "backoff_initial_s": 0.01, "breaker_failures": 2,
            "breaker_reset_s": 60, "concurrency": 1,
            "preset": {**CREDS["amplitude"], "endpoint": fake.url, "batch_wait_s": 1.0}}])
        produce(s, [enriched(customer_user_id=f"user-{i}") for i in range(3)])
        async with Running(s) as router:
            dls = await asyncio.to_thread(dead_letters, s, 3)
            assert router.destinations[0].breaker.is_open
        assert {d["reason"] for d in dls} == {"http_500"}
        assert {json.loads(d["detail"])["attempts"] for d in dls} == {2}
        assert {json.loads(d["detail"])["batch"] for d in dls} == {3}  # one batch, sent twice, then given up
        assert len(fake.hits) == 2
    finally:
        await fake.stop()


async def test_payload_too_large_splits_the_batch() -> None:
    fake = await FakeVendor("amplitude", script=lambda n: (413, {}) if n == 1 else None).start()
    done: list[str] = []
    dead: list[tuple[str, Failure]] = []

    async def on_dead(job: Job, _name: str | None, f: Failure) -> None:
        dead.append((job.record["event_id"], f))

    cfg = DestinationSettings.model_validate({"name": "amp", "kind": "amplitude", "concurrency": 1,
                                              "preset": {**CREDS["amplitude"], "endpoint": fake.url}})
    d = PresetDestination(cfg, RouteMetrics(), lambda j: done.append(j.record["event_id"]), on_dead)
    recs = [decoded(customer_user_id=f"user-{i:03d}") for i in range(10)]
    try:
        for i, r in enumerate(recs):  # queued before the worker starts: the first batch holds all ten
            await d.submit(Job(r, build(r), 0, i, b""))
        await d.start()
        await until(lambda: len(done) + len(dead) == 10, 30)
    finally:
        await d.stop()
        await fake.stop()
    assert dead == [] and sorted(done) == sorted(r["event_id"] for r in recs)
    assert [h.status for h in fake.hits] == [413, 200, 200]
    assert len(fake.accepted) == 10


async def test_deliver_one_returns_the_outcome_for_replay() -> None:
    """`attrib replay --dead-letters` sends one event at a time and wants the failure back, not a new dead letter."""
    fake = await FakeVendor("braze").start()

    async def no_dead_letters(*_: Any) -> None:
        raise AssertionError("deliver() must return failures, not dead-letter them")

    cfg = DestinationSettings.model_validate({"name": "bz", "kind": "braze",
                                              "preset": {**CREDS["braze"], "endpoint": fake.url}})
    d = PresetDestination(cfg, RouteMetrics(), lambda j: None, no_dead_letters)
    await d.start()
    try:
        ok, refused, nobody = (decoded(customer_user_id="user-1"), decoded(customer_user_id="u2", event_name=REJECT),
                               decoded(customer_user_id=None, idfv=None, user_key="fp:x"))
        assert await d.deliver(Job(ok, build(ok), -1, -1, b"")) is None
        failure = await d.deliver(Job(refused, build(refused), -1, -1, b""))
        assert failure is not None and failure.reason == "vendor_rejected"
        assert "blacklisted" in failure.detail["response"]
        assert await d.deliver(Job(nobody, build(nobody), -1, -1, b"")) is None  # skipped: nothing to retry
        assert [user_of("braze", r) for r in fake.accepted] == ["user-1"] and len(fake.hits) == 2
    finally:
        await d.stop()
        await fake.stop()
