"""The CLI shells of replay/route/inspect as real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

from schemas import avro
from tests.ops.replay.test_range import produce_at
from tests.streams.conftest import generic_body, raw_delivery


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")}
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], env={**base, **env}, capture_output=True,
                          text=True, timeout=120)


def test_replay_cli_dry_run_then_topic(make_settings) -> None:
    s = make_settings(topics={"partitions": 1}, sources=[{"name": "gen", "mmp": "generic"}])
    from attrib.topics import ensure_topics

    ensure_topics(s)
    t = int(time.time() * 1000) - 3_600_000
    produce_at(s, [raw_delivery("gen", "generic", generic_body(f"e{i}", "install", t, f"c{i}"), f"cuid:c{i}", t)
                   for i in range(3)])
    env = {"ATTRIB_KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers, "ATTRIB_VAR_DIR": str(s.var_dir),
           "ATTRIB_TOPICS": json.dumps(s.model_dump(mode="json")["topics"]),
           "ATTRIB_SOURCES": json.dumps([{"name": "gen", "mmp": "generic", "verify": ["none"]}])}
    dry = run(env, "replay", "--since", "2h", "--until", "30m", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "deliveries  gen" in dry.stdout and "events      install" in dry.stdout and " 3\n" in dry.stdout
    target = f"t-{uuid.uuid4().hex[:6]}.replayed"
    done = run(env, "replay", "--since", "2h", "--until", "30m", "--into", f"topic:{target}")
    assert done.returncode == 0, done.stderr
    assert f"3 → {target}" in done.stdout and "3/3 records" in done.stderr
    # the progress bar owns stderr: the JSON logs go to a file next to the checkpoint
    assert not [line for line in done.stderr.splitlines() if line.lstrip("\r").startswith("{")], done.stderr
    log_file = done.stderr.split(" logs ", 1)[1].split(")", 1)[0]
    assert log_file.endswith(".log") and os.path.isfile(log_file)
    again = run(env, "replay", "--since", "2h", "--until", "30m", "--into", f"topic:{target}", "--restart")
    assert again.returncode == 2 and "already holds records" in again.stderr
    bad = run(env, "replay", "--since", "soon", "--into", "live")
    assert bad.returncode == 2 and "cannot read time" in bad.stderr
    assert run(env, "replay", "--since", "2h", "--into", "warehouse").returncode == 2


def test_route_check_and_inspect_off_by_default(tmp_path) -> None:
    dest = {"name": "crm", "url": "https://crm.example/h?u={{ user.key }}&t=secret-in-query",
            "filters": {"event.name": "PURCHASE"}}
    ok = run({"ATTRIB_ROUTE__DESTINATIONS": json.dumps([dest])}, "route", "--check")
    assert ok.returncode == 0 and "crm: POST https://crm.example/h tags=['user.key']" in ok.stdout
    assert "secret-in-query" not in ok.stdout
    broken = run({"ATTRIB_ROUTE__DESTINATIONS": json.dumps([{**dest, "url": "https://x/{{ user.key"}])},
                 "route", "--check")
    assert broken.returncode == 2 and "destination crm" in broken.stdout
    off = run({}, "inspect")
    assert off.returncode == 2 and "disabled" in off.stdout
    weak = run({"ATTRIB_INSPECTOR__ENABLED": "true", "ATTRIB_INSPECTOR__TOKEN": "short"}, "inspect")
    assert weak.returncode == 2 and "16 characters" in weak.stdout


def test_replay_killed_with_sigkill_resumes_and_loses_nothing(make_settings) -> None:
    """kill -9 in the middle of a replay into a topic, then the same command again: it resumes from its checkpoint
    and every event of the range reaches the topic (at least once)."""
    from confluent_kafka import Consumer, TopicPartition

    from attrib.topics import ensure_topics

    n = 12_000
    s = make_settings(topics={"partitions": 2}, sources=[{"name": "gen", "mmp": "generic"}])
    ensure_topics(s)
    t = int(time.time() * 1000) - 3_600_000
    produce_at(s, [raw_delivery("gen", "generic", generic_body(f"k{i}", "install", t + i, f"c{i}"), f"cuid:c{i}", t + i)
                   for i in range(n)])
    env = {"ATTRIB_KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers, "ATTRIB_VAR_DIR": str(s.var_dir),
           "ATTRIB_TOPICS": json.dumps(s.model_dump(mode="json")["topics"]), "ATTRIB_REPLAY__BATCH": "200",
           "ATTRIB_SOURCES": json.dumps([{"name": "gen", "mmp": "generic", "verify": ["none"]}])}
    target = f"t-{uuid.uuid4().hex[:6]}.replayed"
    args = ("replay", "--since", "2h", "--until", "30m", "--into", f"topic:{target}")
    probe = Consumer({"bootstrap.servers": s.kafka.bootstrap_servers, "group.id": uuid.uuid4().hex})

    def written() -> int:
        try:
            return sum(probe.get_watermark_offsets(TopicPartition(target, p), timeout=5)[1] for p in range(2))
        except Exception:  # noqa: BLE001 - the topic does not exist yet
            return 0

    base = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")}
    proc = subprocess.Popen([sys.executable, "-m", "ops.cli", *args], env={**base, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while written() < n // 10 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the replay finished before it could be killed: raise n"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    at_kill = written()
    assert 0 < at_kill < n

    time.sleep(1.1)  # "2h" now means a later instant: the same command must still resume the first run's range
    resumed = run(env, *args)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr
    c = Consumer({"bootstrap.servers": s.kafka.bootstrap_servers, "group.id": uuid.uuid4().hex,
                  "auto.offset.reset": "earliest"})
    c.subscribe([target])
    ids: list[str] = []
    deadline = time.monotonic() + 60
    while len(set(ids)) < n and time.monotonic() < deadline:
        for m in c.consume(1000, timeout=0.5):
            if m.error() is None:
                ids.append(avro.decode(m.value() or b"")[1]["event_id"])
    c.close()
    probe.close()
    assert set(ids) == {f"k{i}" for i in range(n)}
    # what was flushed after the last checkpoint before the kill went out twice; nothing more than a batch or so
    assert len(ids) - n <= at_kill
