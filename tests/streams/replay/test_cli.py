"""The CLI shells of replay/route/inspect as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

from tests.streams.conftest import generic_body, raw_delivery
from tests.streams.replay.test_range import produce_at


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")}
    return subprocess.run([sys.executable, "-m", "attrib.cli", *args], env={**base, **env}, capture_output=True,
                          text=True, timeout=120)


def test_replay_cli_dry_run_then_topic(make_settings) -> None:  # type: ignore[no-untyped-def]
    s = make_settings(topics={"partitions": 1}, sources=[{"name": "gen", "mmp": "generic"}])
    from attrib.topics import ensure_topics

    ensure_topics(s)
    t = int(time.time() * 1000) - 3_600_000
    produce_at(s, [raw_delivery("gen", "generic", generic_body(f"e{i}", "install", t, f"c{i}"), f"cuid:c{i}", t)
                   for i in range(3)])
    env = {"ATTRIB_KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers, "ATTRIB_VAR_DIR": str(s.var_dir),
           "ATTRIB_TOPICS": json.dumps(s.model_dump(mode="json")["topics"]),
           "ATTRIB_SOURCES": json.dumps([{"name": "gen", "mmp": "generic"}])}
    dry = run(env, "replay", "--since", "2h", "--until", "30m", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "deliveries  gen" in dry.stdout and "events      install" in dry.stdout and " 3\n" in dry.stdout
    target = f"t-{uuid.uuid4().hex[:6]}.replayed"
    done = run(env, "replay", "--since", "2h", "--until", "30m", "--into", f"topic:{target}")
    assert done.returncode == 0, done.stderr
    assert f"3 → {target}" in done.stdout and "3/3 records" in done.stderr
    again = run(env, "replay", "--since", "2h", "--until", "30m", "--into", f"topic:{target}", "--restart")
    assert again.returncode == 2 and "already holds records" in again.stderr
    bad = run(env, "replay", "--since", "soon", "--into", "live")
    assert bad.returncode == 2 and "cannot read time" in bad.stderr
    assert run(env, "replay", "--since", "2h", "--into", "warehouse").returncode == 2


def test_route_check_and_inspect_off_by_default(tmp_path) -> None:  # type: ignore[no-untyped-def]
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
