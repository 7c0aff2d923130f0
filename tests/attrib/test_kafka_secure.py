"""Every stage over a secured broker: a throwaway broker with a SASL_SSL (SCRAM-SHA-512) listener and an mTLS listener,
certificates from a CA generated for the test (tests/support.py SecureBroker). The pipeline (ingest → worker → sink),
alerts, the notifier and replay run as their own processes configured only by ATTRIB_KAFKA__* settings; a wrong
password stops a service at start with one line."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from attrib import kafka
from attrib import settings as settings_mod
from attrib.errors import DependencyUnavailable
from attrib.settings import KafkaSettings, Settings
from attrib.topics import counts_topic
from ops.sql import query_rows
from ops.supervise import Service, attrib_argv
from schemas.normalize import normalize
from tests.support import SCRAM_PASSWORD, SCRAM_USER, SecureBroker, secure_broker
from tests.test_pipeline import _env, _settle, running_pipeline

T = TypeVar("T")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    b = secure_broker(tmp_path_factory.mktemp("secure-stack"))
    try:
        yield b
    finally:
        b.stop(log=lambda *_: None)


def sasl_env(b: SecureBroker, password: str = SCRAM_PASSWORD) -> dict[str, str]:
    assert b.tls is not None
    return {"ATTRIB_KAFKA__BOOTSTRAP_SERVERS": b.sasl_bootstrap, "ATTRIB_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "ATTRIB_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512", "ATTRIB_KAFKA__SASL_USERNAME": SCRAM_USER,
            "ATTRIB_KAFKA__SASL_PASSWORD": password, "ATTRIB_KAFKA__SSL_CA_FILE": str(b.tls.ca)}


def members(s: Settings, group: str) -> list[tuple[str, str | None]]:
    """(client.id, group.instance.id) of the group's members, asked over the secured listener."""
    admin = kafka.admin(s)  # keep it referenced until the future resolves
    described = admin.describe_consumer_groups([group])[group].result(30)
    return sorted((m.client_id, m.group_instance_id) for m in described.members)


def wait_for(what: str, check: Callable[[], T], timeout_s: float = 120) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.5)


def test_pipeline_alerts_notifier_and_replay_work_over_sasl_ssl(broker: SecureBroker, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**_env(tmp_path, broker.sasl_bootstrap), **sasl_env(broker),
           "ATTRIB_ALERTS__APP_ID": f"a-{uuid.uuid4().hex[:6]}",
           "ATTRIB_ALERTS__NOTIFY_GROUP": f"n-{uuid.uuid4().hex[:6]}",
           "ATTRIB_ALERTS__QUALIFIED__MIN_REVENUE": "1000000", "ATTRIB_SLACK_WEBHOOK_URL": "http://127.0.0.1:9/hook"}
    with running_pipeline(tmp_path, env, monkeypatch) as s:
        assert s.kafka.security_protocol == "SASL_SSL"
        sent = subprocess.run(attrib_argv("send", "--count", "25", "--duplicates", "0.1", "--seed", "5", "--json",
                                          "--no-progress"), env={**os.environ, **env}, capture_output=True, timeout=300)
        assert sent.returncode == 0, sent.stderr.decode()[-2000:]
        summary = json.loads(sent.stdout.decode().strip().splitlines()[-1])
        accepted = sum(n for code, n in summary["statuses"].items() if str(code).startswith("2"))
        assert accepted == summary["sent"] > 0

        db = s.clickhouse.database
        raws = wait_for("raw deliveries", lambda: (r := query_rows(s, f"SELECT * FROM {db}.raw_deliveries FINAL"))
                        and len(r) >= accepted and r)
        assert len(raws) == accepted
        expected: set[str] = set()
        for r in raws:
            source = s.source(r["source"])
            assert source is not None
            with contextlib.suppress(Exception):  # the worker dead-letters what does not normalize
                expected |= {e["event_id"] for e in normalize(source, {**r, "body": r["body"].encode(),
                                                                       "received_at": 0})}
        assert _settle(s, len(expected)) == len(expected)
        ids = {r["event_id"] for r in query_rows(s, f"SELECT event_id FROM {db}.events FINAL")}
        assert ids == expected

        # the long-running members joined with static membership over SASL_SSL
        host_sink = members(s, s.sink.group_id)
        assert [c for c, _ in host_sink] == ["attrib-sink"] and host_sink[0][1] is not None
        assert "-sink-0-" in host_sink[0][1]
        assert [c for c, _ in members(s, s.streams.app_id)] == ["attrib-worker"]

        alerts = Service("alerts", attrib_argv("alerts"), None, env)
        notifier = Service("notifier", attrib_argv("notify"), None, env)
        try:
            for svc in (alerts, notifier):
                svc.start(tmp_path / "logs")
            # alerts evaluates the worker's counts: its group commits offsets past every counts record written so far
            written = _high_water(s, counts_topic(s))
            assert written > 0, "the worker wrote no counts for alerts"
            counted = wait_for("alerts committing", lambda: _committed(s, s.alerts.app_id, counts_topic(s))
                               >= written and True, 180)
            assert counted
            got = wait_for("notifier member", lambda: members(s, s.alerts.slack.group_id), 120)
            assert [c for c, _ in got] == ["attrib-notifier"] and "-notifier-0-" in str(got[0][1])
            assert alerts.alive() and notifier.alive()
        finally:
            for svc in (notifier, alerts):
                svc.stop()

    # replay (after the sink released the embedded engine): the archived raw range, re-processed into a fresh
    # ClickHouse database, over SASL_SSL
    target = f"replay_{uuid.uuid4().hex[:6]}"
    rep = subprocess.run(attrib_argv("replay", "--since", "1h", "--into", f"clickhouse:{target}"),
                         env={**os.environ, **env}, capture_output=True, timeout=600)
    assert rep.returncode == 0, (rep.stdout + rep.stderr).decode()[-3000:]
    replayed = {r["event_id"] for r in query_rows(s, f"SELECT event_id FROM {target}.events FINAL")}
    assert replayed == expected


def _high_water(s: Settings, topic: str) -> int:
    from confluent_kafka import TopicPartition

    c = kafka.consumer(s, "admin", f"hw-{uuid.uuid4().hex[:6]}")
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts)
    finally:
        c.close()


def _committed(s: Settings, group: str, topic: str) -> int:
    from confluent_kafka import TopicPartition

    c = kafka.consumer(s, "admin", group)
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(max(tp.offset, 0) for tp in c.committed([TopicPartition(topic, p) for p in parts], timeout=10))
    finally:
        c.close()


@pytest.mark.parametrize("command", ["sink", "worker", "ingest", "notify", "replay"])
def test_a_wrong_password_stops_the_service_at_start_with_one_line(broker: SecureBroker, tmp_path: Path,
                                                                    command: str) -> None:
    env = {**os.environ, **_env(tmp_path, broker.sasl_bootstrap), **sasl_env(broker, password="not-the-password")}
    argv = attrib_argv(command, *(["--since", "1h", "--dry-run"] if command == "replay" else []))
    proc = subprocess.run(argv, env=env, capture_output=True, timeout=120)
    err = proc.stderr.decode().strip()
    assert proc.returncode == 2, (proc.returncode, err[-3000:])
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"attrib {command}: Kafka at {broker.sasl_bootstrap} (SASL_SSL, SCRAM-SHA-512 as ")
    assert "SASL authentication error" in err and "ATTRIB_KAFKA__SASL_PASSWORD" in err
    assert "not-the-password" not in err


def test_mtls_clients_need_their_certificate(broker: SecureBroker, tmp_path: Path) -> None:
    """Client-certificate (mTLS) listener: the confluent-kafka and aiokafka clients the factory builds present the
    certificate and round-trip a record; without it the broker refuses the handshake."""
    import asyncio

    from aiokafka import AIOKafkaConsumer

    assert broker.tls is not None
    k = {"bootstrap_servers": broker.mtls_bootstrap, "security_protocol": "SSL", "ssl_ca_file": broker.tls.ca,
         "ssl_cert_file": broker.tls.client_cert, "ssl_key_file": broker.tls.client_key}
    s = settings_mod.load(var_dir=tmp_path, kafka=k)
    topic = f"mtls-{uuid.uuid4().hex[:6]}"
    from confluent_kafka.admin import NewTopic

    admin = kafka.admin(s)
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    p = kafka.producer(s, "ingest", {"acks": "all"})
    p.produce(topic, b"over-mtls", b"k")
    assert p.flush(30) == 0

    async def read() -> bytes:
        c = AIOKafkaConsumer(topic, **kafka.aiokafka_consumer(s, "notifier", f"g-{uuid.uuid4().hex[:6]}", [topic]),
                             auto_offset_reset="earliest")
        await c.start()
        try:
            return (await asyncio.wait_for(c.getone(), 60)).value
        finally:
            await c.stop()

    assert asyncio.run(read()) == b"over-mtls"
    no_cert = Settings(var_dir=tmp_path, kafka=KafkaSettings.model_validate(
        {**k, "ssl_cert_file": None, "ssl_key_file": None}))
    with pytest.raises(DependencyUnavailable):
        kafka.probe(no_cert, timeout=5)
