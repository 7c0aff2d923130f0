"""The local spool end to end, on a private broker that the tests stop and start (the session broker stays up):
with Kafka gone, verified deliveries are answered 200 within the shortest documented sender timeout; once Kafka is
back every one of them is in the raw topic, in order; a kill -9 with records spooled loses none of them; a full
spool refuses (503 + Retry-After) and /readyz says why before that."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from attrib.settings import Settings
from attrib.topics import ensure_topics
from ingest.app import INGRESS
from ingest.senders import SHORTEST_ANSWER_TIMEOUT_S
from ingest.verify import Outbound
from ops.stack import Broker
from tests.ingest.conftest import LR_KEY, Ingress, consume
from tests.support import free_port, throwaway_broker

ROOT = Path(__file__).resolve().parents[2]
GAID = "0c4f3c2e-0000-4000-8000-000000000001"  # one user: one key, one partition, so one order to check
SOURCES: list[dict[str, Any]] = [
    {"name": "lr", "mmp": "linkrunner", "verify": ["token"], "secrets": [LR_KEY],
     "options": {"spool_after_s": 0.3}},  # the per-source override (default ingest.spool_after_s)
]


def _delivery(i: int) -> Outbound:
    body = json.dumps({"event_type": "purchase", "gaid": GAID, "n": i}).encode()
    return Outbound("POST", "/webhooks/lr", headers={"Content-Type": "application/json"}, body=body)


async def _off(broker: Broker) -> None:
    await asyncio.get_running_loop().run_in_executor(None, lambda: broker.stop(log=lambda *_: None))


async def _on(broker: Broker) -> None:
    await asyncio.get_running_loop().run_in_executor(None, lambda: broker.start(log=lambda *_: None))


def _sender_session() -> aiohttp.ClientSession:
    # the sender's own deadline: an answer later than the shortest documented sender timeout fails the request
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SHORTEST_ANSWER_TIMEOUT_S))


async def _bodies_in_order(s: Settings, n: int) -> list[bytes]:
    """Distinct bodies of the raw topic in the order Kafka holds them (a retried produce may add a duplicate, which
    downstream dedupes; the order of first appearance is what counts). Off the loop: the drainer runs on it."""
    got = await asyncio.get_running_loop().run_in_executor(None, lambda: consume(s, s.topics.raw, n, 240))
    seen: dict[bytes, None] = {}
    for _, rec in got:
        seen.setdefault(rec["body"], None)
    return list(seen)


@pytest.fixture(scope="module")
def _module_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = throwaway_broker(tmp_path_factory.mktemp("own-broker"))
    yield broker
    broker.stop(log=lambda *_: None)


@pytest.fixture
def own_broker(_module_broker: Broker) -> Broker:
    """One private broker for the module (each test stops and starts it anyway; a fresh one per test only cost its
    start-up); running at the start of every test, also after one that failed while it was stopped. The tests share
    no topic: each has its own names."""
    _module_broker.start(log=lambda *_: None)  # a no-op when it runs and answers
    return _module_broker


async def test_kafka_down_answers_200_from_the_spool_then_drains_in_order(own_broker, start_ingress) -> None:
    ing = await start_ingress(sources=SOURCES, kafka_bootstrap=own_broker.bootstrap)
    await ing.session.close()
    ing.session = _sender_session()
    assert (await ing.send(_delivery(0), sign_as="lr"))[0] == 200  # stored (or spooled, on a slow first ack)

    await _off(own_broker)
    answers = [await ing.send(_delivery(i), sign_as="lr") for i in range(1, 16)]  # TimeoutError if one is late
    assert [(a[0], a[1]["status"]) for a in answers] == [(200, "spooled")] * 15
    spool = ing.runner.app[INGRESS].spool
    assert spool.records >= 15 and spool.bytes > 0  # (16 when the first ack was slow too)

    await _on(own_broker)
    assert await _bodies_in_order(ing.settings, 16) == [_delivery(i).body for i in range(16)]
    for _ in range(120):  # the drainer deletes the drained segment once it has seen everything acknowledged
        if spool.records == 0 and spool.bytes == 0:
            break
        await asyncio.sleep(0.5)
    assert (spool.records, spool.bytes) == (0, 0)
    assert not list(spool.dir.glob("*.spool"))
    metrics = await (await ing.session.get(ing.url + "/metrics")).text()
    assert "attrib_ingest_spool_records 0.0" in metrics and "attrib_ingest_spool_bytes 0.0" in metrics
    assert 'attrib_ingest_spooled_total{source="lr"}' in metrics


async def test_a_full_spool_refuses_and_readiness_warns_first(own_broker, start_ingress) -> None:
    one = len(_delivery(1).body) + 400  # about one raw record's frame
    ing = await start_ingress(sources=SOURCES, kafka_bootstrap=own_broker.bootstrap, spool_max_bytes=3 * one,
                              spool_high_water=0.1)
    async with ing.session.get(ing.url + "/readyz") as r:
        assert r.status == 200
    await _off(own_broker)
    statuses = []
    for i in range(1, 8):
        status, answer, headers = await ing.send(_delivery(i), sign_as="lr")
        statuses.append(status)
        if status == 503:
            assert answer["error"] == "kafka_unavailable" and headers["Retry-After"] == "5"
            break
        assert answer["status"] == "spooled"
        async with ing.session.get(ing.url + "/readyz") as r:  # above the high-water mark after the first one
            assert r.status == 503 and "spool above its high-water mark" in (await r.json())["detail"]
    assert statuses[-1] == 503 and set(statuses[:-1]) == {200}, statuses
    accepted = len(statuses) - 1
    await _on(own_broker)
    got = await _bodies_in_order(ing.settings, accepted)
    assert got[:accepted] == [_delivery(i).body for i in range(1, accepted + 1)]


async def test_kill_9_with_records_spooled_then_restart_delivers_them_all(tmp_path: Path, own_broker) -> None:
    s = Settings(var_dir=tmp_path / "var", kafka={"bootstrap_servers": own_broker.bootstrap, "produce_timeout_s": 2},
                 topics={"raw": "k9.raw", "dead_letters": "k9.dlq", "partitions": 2},
                 ingest={"host": "127.0.0.1", "port": free_port()}, sources=SOURCES)
    ensure_topics(s)
    config = tmp_path / "ingest.toml"
    config.write_text(f'var_dir = "{s.var_dir}"\n[kafka]\nbootstrap_servers = "{own_broker.bootstrap}"\n'
                      'produce_timeout_s = 2\n[topics]\nraw = "k9.raw"\ndead_letters = "k9.dlq"\npartitions = 2\n'
                      f'[ingest]\nhost = "127.0.0.1"\nport = {s.ingest.port}\n'
                      f'[[sources]]\nname = "lr"\nmmp = "linkrunner"\nverify = ["token"]\nsecrets = ["{LR_KEY}"]\n'
                      '[sources.options]\nspool_after_s = 0.3\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")} | {"ATTRIB_CONFIG": str(config)}
    url = f"http://127.0.0.1:{s.ingest.port}"

    def ingress() -> subprocess.Popen[bytes]:
        p = subprocess.Popen([sys.executable, "-m", "ops.cli", "ingest"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=(tmp_path / "ingest.log").open("ab"))
        for _ in range(600):  # a hang guard, not a timing assertion
            try:
                with socket.create_connection(("127.0.0.1", s.ingest.port), timeout=1):
                    return p
            except OSError:
                assert p.poll() is None, (tmp_path / "ingest.log").read_text()
                time.sleep(0.1)
        raise AssertionError("the ingress did not come up")

    await _off(own_broker)
    first = ingress()
    try:
        async with _sender_session() as session:
            ing = Ingress(url, s, session, None)
            answers = [await ing.send(_delivery(i), sign_as="lr") for i in range(20)]
        assert [(a[0], a[1]["status"]) for a in answers] == [(200, "spooled")] * 20
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    (segment,) = (s.var_dir / "ingest-spool" / "0").glob("*.spool")
    with segment.open("ab") as f:  # and the crash tore a write in half
        f.write(b"\x00\x00\x01\x00partial")

    await _on(own_broker)
    second = ingress()
    try:
        assert await _bodies_in_order(s, 20) == [_delivery(i).body for i in range(20)]
        for _ in range(120):
            if not list(segment.parent.glob("*.spool")):
                break
            await asyncio.sleep(0.5)
        assert not list(segment.parent.glob("*.spool"))  # drained, and deleted only then
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(60)
    log = (tmp_path / "ingest.log").read_text()
    assert "damaged tail" in log and "draining them first" in log
