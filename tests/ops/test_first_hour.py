"""A new user's first hour, scripted: a fresh var/, `attrib run` (what `make run` starts) in the background, then the
README's follow-up commands from another process, as a user types them: config, send, sql, tail, replay --dry-run,
stack status, migrate. Each must tell the truth about the running demo (issue 20)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.ops.pipeline import processes_of
from tests.ops.test_run import ROOT
from tests.support import free_port

pytestmark = pytest.mark.timeout(600)
DEMO = {"branch", "appsflyer", "adjust", "linkrunner", "partner"}


def _listening(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (IPv4, from /proc)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, _, p = local.partition(":")
        if state == "0A" and int(p, 16) == port:
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(addr))))
    return found


def test_first_hour(tmp_path: Path) -> None:
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")} | {
        "ATTRIB_VAR_DIR": str(var),
        "ATTRIB_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "ATTRIB_STACK__CONTROLLER_PORT": str(free_port()),
        "ATTRIB_STACK__JARS_DIR": str(ROOT / "var" / "kafka" / "lib"),
        "ATTRIB_INGEST__PORT": str(free_port()),
        "ATTRIB_SINK__QUERY_PORT": str(free_port()),
        "ATTRIB_STREAMS__METRICS_PORT": str(free_port()), "ATTRIB_ALERTS__READY_PORT": str(free_port()),
    }

    def attrib(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ops.cli", *args], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout)

    out = tmp_path / "run.out"
    with out.open("wb") as f:
        run = subprocess.Popen([sys.executable, "-m", "ops.cli", "run", "--count", "20"], env=env, cwd=ROOT,
                               stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while "Ctrl-C stops everything" not in out.read_text() and run.poll() is None:
            assert time.monotonic() < deadline, out.read_text()[-3000:]
            time.sleep(1)
        text = out.read_text()
        assert run.poll() is None, text[-3000:]
        assert f"demo sources copied to {var / 'demo.toml'}" in text and "statuses  200: 100" in text

        # operator ports bind loopback: the worker's metrics and the sink's query port (the ingress is the public one)
        for port in (env["ATTRIB_STREAMS__METRICS_PORT"], env["ATTRIB_SINK__QUERY_PORT"]):
            assert _listening(int(port)) == {"127.0.0.1"}, port

        held = attrib("replay", "--dead-letters", "--dry-run")  # needs the warehouse the sink holds: one line
        assert held.returncode == 1 and "Traceback" not in held.stderr, held.stderr[-2000:]
        assert "held by pid" in held.stderr and "(attrib sink)" in held.stderr

        config = attrib("config")  # the sources the running pipeline verifies, secrets masked
        assert config.returncode == 0 and str(var / "demo.toml") in config.stderr
        shown = json.loads(config.stdout)
        assert {x["name"] for x in shown["sources"]} == DEMO and "demo-af-old" not in config.stdout

        send = attrib("send", "--count", "10", "--no-progress")  # the hint `attrib run` prints
        assert send.returncode == 0, send.stderr[-2000:]
        assert "statuses  200: 50" in send.stdout

        sql = attrib("sql", "SELECT count() AS n FROM events FINAL", "--format", "json")
        assert sql.returncode == 0 and json.loads(sql.stdout)["n"] > 0, sql.stderr
        rollups = attrib("sql", "SELECT day, users_state FROM daily_rollups FORMAT JSONEachRow")
        assert rollups.returncode == 0, rollups.stderr
        states = [json.loads(line)["users_state"] for line in rollups.stdout.splitlines()]
        assert states and all(isinstance(n, int) and n > 0 for n in states)  # values, not binary states

        tail = subprocess.Popen([sys.executable, "-m", "ops.cli", "tail", "--since", "10"], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert tail.stdout is not None
        heads = [tail.stdout.readline() for _ in range(20)]
        tail.send_signal(signal.SIGINT)
        tail.wait(30)
        assert all(line.strip() for line in heads), heads
        assert not any("no verification configured" in h for h in heads), heads
        keys = [w for h in heads for w in h.split() if w.startswith(("appsflyer_id:", "adjust_adid:", "gaid:"))]
        assert all(len(k.partition(":")[2]) == 5 and k.endswith("…") for k in keys), keys  # kind + 4 characters
        assert all(" accepted " in h and " passed " in h for h in heads), heads  # the demo sources' own schemes

        dry = attrib("replay", "--since", "1h", "--dry-run")
        assert dry.returncode == 0, dry.stderr[-2000:]
        assert "unknown_source" not in dry.stdout + dry.stderr

        status = attrib("stack", "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert "kafka: running" in status.stdout and "sink: running" in status.stdout
        assert "held by pid" in status.stdout and "attrib sink" in status.stdout

        migrate = attrib("migrate")  # `stack up` / `migrate` while the pipeline runs: no traceback, nothing to do
        assert migrate.returncode == 0, migrate.stderr[-2000:]
        assert "held by the running sink" in migrate.stdout and "none pending" in migrate.stdout
        up = attrib("stack", "up")  # "idempotent", also while the pipeline runs
        assert up.returncode == 0 and "held by the running sink" in up.stdout, up.stdout + up.stderr[-2000:]

        run.send_signal(signal.SIGINT)
        assert run.wait(120) == 0
    finally:
        if run.poll() is None:
            run.kill()
        for pid in processes_of(var):
            os.kill(pid, signal.SIGKILL)
