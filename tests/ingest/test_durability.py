"""Never a 2xx for something neither Kafka nor the local spool stored: broker outage on a private broker (the session
broker stays up) without a spool, recovery when it returns, and draining in-flight deliveries on shutdown."""

from __future__ import annotations

import asyncio
import json

from attrib.settings import Settings
from ingest import producer
from ingest.verify import Outbound
from ops.stack import Broker, fetch_jars
from tests.ingest.conftest import SOURCES, consume
from tests.support import free_port

BOUND_S = 2.0


def _delivery(i: int) -> Outbound:
    body = json.dumps({"event_type": "install", "gaid": f"{i:08x}-0000-4000-8000-000000000000"}).encode()
    return Outbound("POST", "/webhooks/lr", headers={"Content-Type": "application/json"}, body=body)


async def _send(ing, i: int) -> tuple[int, dict, object]:
    return await ing.send(_delivery(i), sign_as="lr")


async def test_without_a_spool_broker_down_gives_503_within_the_bound_and_recovers(start_ingress, tmp_path):
    home = tmp_path / "own-broker"
    s = Settings(var_dir=home, kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"},
                 stack={"controller_port": free_port()})
    fetch_jars(s)
    broker = Broker.from_settings(s)
    broker.start(log=lambda *_: None)
    try:
        ing = await start_ingress(kafka_bootstrap=broker.bootstrap, spool_max_bytes=0)  # test_spool_ingress: with
        first = [(await _send(ing, 0))[0] for _ in range(5)]  # a fresh broker's first ack may outlast the 2 s bound
        assert 200 in first, first

        await asyncio.get_running_loop().run_in_executor(None, lambda: broker.stop(log=lambda *_: None))
        # client-side guard: a request hanging past the bound (plus slack for this busy machine) fails the test
        results = await asyncio.wait_for(asyncio.gather(*(_send(ing, i) for i in range(1, 9))), BOUND_S * 4)
        assert [r[0] for r in results] == [503] * 8, [r[1] for r in results]
        assert all(r[1]["error"] == "kafka_unavailable" and r[2]["Retry-After"] == "5" for r in results)

        await asyncio.get_running_loop().run_in_executor(None, lambda: broker.start(log=lambda *_: None))
        statuses = []
        for i in range(100, 140):  # the producer reconnects on its own; the first tries may still be 503
            status = (await _send(ing, i))[0]
            statuses.append(status)
            if status == 200:
                break
        assert set(statuses) <= {200, 503} and statuses[-1] == 200
        stored = [rec["body"] for _, rec in consume(ing.settings, ing.settings.topics.raw, 2)]
        assert _delivery(0).body in stored and _delivery(100 + len(statuses) - 1).body in stored
    finally:
        broker.stop(log=lambda *_: None)


async def test_shutdown_drains_in_flight_deliveries(start_ingress):
    ing = await start_ingress(sources=SOURCES)
    tasks = [asyncio.create_task(_send(ing, i)) for i in range(60)]
    from ingest import metrics

    for _ in range(2000):  # wait until some deliveries are waiting for Kafka's ack
        if metrics.IN_FLIGHT._value.get() > 0 or all(t.done() for t in tasks):
            break
        await asyncio.sleep(0.001)
    await ing.runner.cleanup()  # stop accepting, finish in-flight handlers, flush the producer
    results = await asyncio.gather(*tasks, return_exceptions=True)
    ok = [r[1]["delivery_id"] for r in results if not isinstance(r, BaseException) and r[0] == 200]
    assert all(isinstance(r, BaseException) or r[0] == 200 for r in results)  # refused connections, never a 5xx
    assert ok, "no delivery was in flight during shutdown"
    stored = {rec["delivery_id"] for _, rec in consume(ing.settings, ing.settings.topics.raw, len(ok))}
    assert set(ok) <= stored


def test_produce_wait_outlasts_broker_fencing_with_a_per_source_override():
    from ingest.sources import compile_all

    s = Settings(sources=[{"name": "af", "mmp": "appsflyer", "verify": ["token"], "secrets": ["t"]},
                          {"name": "adj", "mmp": "adjust", "verify": ["token"], "secrets": ["t"],
                           "options": {"produce_timeout_s": 4}},
                          {"name": "slow", "mmp": "generic", "verify": ["token"], "secrets": ["t"],
                           "options": {"produce_timeout_s": 25}}])
    assert s.kafka.produce_timeout_s == 15.0  # > the ~10 s a dead follower takes to leave the ISR (README)
    plans = compile_all(s)
    assert [plans[n].options.produce_timeout_s for n in ("af", "adj", "slow")] == [None, 4, 25]
    assert producer.config(s)["message.timeout.ms"] == 25000  # librdkafka tries as long as the longest wait


def test_bad_produce_timeout_fails_start_naming_the_key():
    import pytest

    from attrib.settings import ConfigError
    from ingest.sources import compile_all

    s = Settings(sources=[{"name": "x", "mmp": "generic", "verify": ["token"], "secrets": ["t"],
                           "options": {"produce_timeout_s": -1}}])
    with pytest.raises(ConfigError, match=r"ATTRIB_SOURCES\[0\]__OPTIONS__PRODUCE_TIMEOUT_S"):
        compile_all(s)


async def test_a_late_ack_is_reported_without_ending_the_produce():
    """The spool path asks "acknowledged within spool_after_s?" and, on no, hands the still-running produce to the
    drainer: the question must not expire the record (only ``wait`` does, at the produce timeout)."""
    s = Settings(kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"})  # nothing listens: no ack ever comes
    p = producer.DurableProducer(s)
    p.start(asyncio.get_running_loop())
    try:
        fut = p.submit("raw", b"k", b"v")
        assert await p.acked_within(fut, 0.05) is False
        assert not fut.done()  # still in flight: a late ack would still count
        woken = asyncio.get_running_loop().create_future()  # the request path's form: the report wakes it directly
        linked = p.submit("raw", b"k", b"v", wake=woken)
        assert await p.acked_within(linked, 0.05, woken) is False
        assert not linked.done()
        stored = asyncio.get_running_loop().create_future()
        stored.set_result(producer.Stored("raw", 0, 7))
        assert await p.acked_within(stored, 0.05) is True
        try:
            await p.wait(fut, 0.05)
        except producer.ProduceError as exc:
            assert exc.reason == "timeout"
        else:
            raise AssertionError("an unacknowledged record counted as stored")
        assert await p.acked_within(fut, 0.05) is False  # expired: not stored
    finally:
        await p.stop_polling()
        p.close(0.1)
