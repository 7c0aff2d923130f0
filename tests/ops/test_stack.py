"""`attrib stack up|down|status` through the real CLI: idempotent, and no stray process left behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import free_port


def _attrib(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], check=False, env=env, capture_output=True,
                          text=True, timeout=180)


def _kafka_pids(var: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"kafka.Kafka {var}"], check=False, capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def test_up_twice_down_twice_leaves_nothing_running(tmp_path):
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")}
    port = free_port()
    env |= {"ATTRIB_VAR_DIR": str(var), "ATTRIB_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
            "ATTRIB_STACK__CONTROLLER_PORT": str(free_port())}

    assert _attrib(env, "stack", "status").returncode == 3  # nothing yet

    up = _attrib(env, "stack", "up")
    assert up.returncode == 0, up.stderr
    assert "formatted new KRaft storage" in up.stdout and "kafka up" in up.stdout
    assert "created topics" in up.stdout and "0001_events" in up.stdout
    assert len(_kafka_pids(var)) == 1

    again = _attrib(env, "stack", "up")
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout and "formatted" not in again.stdout
    assert "none pending" in again.stdout
    assert len(_kafka_pids(var)) == 1

    status = _attrib(env, "stack", "status")
    assert status.returncode == 0 and "kafka: running" in status.stdout

    down = _attrib(env, "stack", "down")
    assert down.returncode == 0 and "kafka stopped" in down.stdout
    assert _kafka_pids(var) == []
    down2 = _attrib(env, "stack", "down")
    assert down2.returncode == 0 and "not running" in down2.stdout

    # warm restart keeps the formatted storage and the topics
    up3 = _attrib(env, "stack", "up")
    assert up3.returncode == 0, up3.stderr
    assert "formatted" not in up3.stdout and "created topics" not in up3.stdout
    assert _attrib(env, "stack", "down").returncode == 0
    assert _kafka_pids(var) == []


def test_port_taken_by_a_foreign_process_is_a_clear_error(tmp_path, kafka_bootstrap):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")}
    env |= {"ATTRIB_VAR_DIR": str(tmp_path / "var"), "ATTRIB_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
            "ATTRIB_STACK__CONTROLLER_PORT": str(free_port())}
    res = _attrib(env, "stack", "up")
    assert res.returncode == 1
    assert "already taken by another process" in res.stderr


def test_format_accepts_a_cluster_id_starting_with_a_dash(tmp_path, monkeypatch):
    """Kafka's random ids are URL-safe base64: about 1 in 64 starts with '-', which the CLI parser took for a flag."""
    from attrib.settings import Settings
    from ops import stack

    monkeypatch.setattr(stack, "_kafka_uuid", lambda: "-vQ4Dzv2TJqSPLJ0pCcBvA")
    b = stack.Broker.from_settings(Settings(var_dir=tmp_path / "var"))
    b.write_config()
    assert b.format_storage()
    assert "-vQ4Dzv2TJqSPLJ0pCcBvA" in next((tmp_path / "var").rglob("meta.properties")).read_text()


def test_interactive_tools_say_when_kafka_is_down_instead_of_retrying_forever(tmp_path, kafka_bootstrap):
    from attrib.settings import KafkaSettings, Settings
    from attrib.topics import unreachable

    assert unreachable(Settings(kafka=KafkaSettings.model_validate({"bootstrap_servers": kafka_bootstrap}))) is None
    down = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")}
    env |= {"ATTRIB_VAR_DIR": str(tmp_path), "ATTRIB_KAFKA__BOOTSTRAP_SERVERS": down}
    for args in (("tail",), ("replay", "--since", "2h", "--into", "topic:x"), ("replay", "--dead-letters")):
        r = _attrib(env, *args)
        assert r.returncode == 2 and f"Kafka at {down} is not reachable" in r.stderr, (args, r.stderr)
        assert "rdkafka" not in r.stderr  # no librdkafka retry noise


def _meta(bootstrap: str) -> tuple[int, dict[str, tuple[int, str]]]:
    """(live brokers, {topic: (replication factor, min.insync.replicas)}) as the cluster reports them."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(timeout=30)
    names = [t for t in md.topics if t.startswith("attrib.")]
    configs = admin.describe_configs([ConfigResource("topic", t) for t in names])
    out = {}
    for res, fut in configs.items():
        rf = {len(p.replicas) for p in md.topics[res.name].partitions.values()}
        assert len(rf) == 1, (res.name, rf)
        out[res.name] = (rf.pop(), fut.result()["min.insync.replicas"].value)
    return len(md.brokers), out


def test_three_broker_cluster_up_status_down(tmp_path):
    var = tmp_path / "var"
    ports = [free_port() for _ in range(3)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")}
    env |= {"ATTRIB_VAR_DIR": str(var),
            "ATTRIB_KAFKA__BOOTSTRAP_SERVERS": ",".join(f"127.0.0.1:{p}" for p in ports),
            "ATTRIB_STACK__CONTROLLER_PORTS": json.dumps([free_port() for _ in range(3)])}
    try:
        up = _attrib(env, "stack", "up", "--brokers", "3")
        assert up.returncode == 0, up.stdout + up.stderr
        for i, port in enumerate(ports, 1):
            assert f"kafka node {i} up" in up.stdout and f"127.0.0.1:{port}" in up.stdout
        assert "created topics" in up.stdout and "ATTRIB_TOPICS__REPLICATION_FACTOR=3" in up.stdout
        assert len(_kafka_pids(var)) == 3

        brokers, topics = _meta(env["ATTRIB_KAFKA__BOOTSTRAP_SERVERS"])
        assert brokers == 3
        from attrib.settings import Settings

        defaults = Settings().topics
        assert set(topics) == {*defaults.all(), defaults.arrivals} and set(topics.values()) == {(3, "2")}, topics

        # status and down find the cluster without being told its size
        status = _attrib(env, "stack", "status")
        assert status.returncode == 0, status.stdout
        assert [f"kafka node {i}: running" in status.stdout for i in (1, 2, 3)] == [True] * 3

        # one node gone: status says which, and `up` restarts only that one
        node2 = int((var / "kafka" / "cluster-3" / "node-2" / "broker.pid").read_text())
        os.kill(node2, signal.SIGKILL)
        status = _attrib(env, "stack", "status")
        assert status.returncode == 3 and "kafka node 2: stopped" in status.stdout, status.stdout
        again = _attrib(env, "stack", "up", "--brokers", "3")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "kafka node 2 up" in again.stdout and "node 1 already running" in again.stdout
        assert "formatted" not in again.stdout and "created topics" not in again.stdout

        down = _attrib(env, "stack", "down")
        assert down.returncode == 0 and down.stdout.count("stopped (pid") == 3, down.stdout
        assert _kafka_pids(var) == []
    finally:
        for pid in _kafka_pids(var):
            os.kill(pid, signal.SIGKILL)


def test_a_broker_error_reaches_broker_log(tmp_path):
    """The broker's own errors must land in broker.log (a mismatched SLF4J binding once sent them nowhere)."""
    from attrib.settings import KafkaSettings, Settings, StackSettings
    from ops.stack import Broker, StackError, fetch_jars

    with socket.socket() as taken:  # bound, not listening: the pre-start probe finds nothing, the broker's bind fails
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        s = Settings(var_dir=tmp_path / "var",
                     kafka=KafkaSettings.model_validate({"bootstrap_servers": f"127.0.0.1:{port}"}),
                     stack=StackSettings.model_validate({"controller_port": free_port()}))
        fetch_jars(s)
        broker = Broker.from_settings(s)
        with pytest.raises(StackError, match="exited with code"):
            broker.start(log=lambda *_: None)
    log = broker.log_file.read_text()
    assert "Address already in use" in log, log[-3000:]
    assert "ERROR" in log and "SLF4J" not in log  # no "no binding found / NOP logger" warning either
