"""`attrib run` (what `make run` starts) as a user runs it: its own broker, the services, sample traffic, the report;
a service killed meanwhile is restarted and the pipeline goes on — then stopped with SIGINT while started the way a
script starts it in the background (SIGINT ignored by the shell), and nothing may be left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.ops.pipeline import processes_of, service_pid, sink_rows
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(400)


def _events(query_port: int) -> int:
    try:
        return int(sink_rows(query_port, "SELECT count() AS n FROM attribution.events")[0]["n"])
    except OSError:  # the sink may be between restarts; the caller polls
        return -1


def test_run_reports_restarts_a_killed_service_then_stops_everything_on_sigint(tmp_path: Path) -> None:
    var = tmp_path / "var"
    query_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")}
    env.update({
        "ATTRIB_VAR_DIR": str(var),
        "ATTRIB_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "ATTRIB_STACK__CONTROLLER_PORT": str(free_port()),
        "ATTRIB_STACK__JARS_DIR": str(ROOT / "var" / "kafka" / "lib"),
        "ATTRIB_INGEST__PORT": str(free_port()),
        "ATTRIB_SINK__QUERY_PORT": str(query_port),
        "ATTRIB_STREAMS__METRICS_PORT": str(free_port()), "ATTRIB_ALERTS__READY_PORT": str(free_port()),
    })
    out = tmp_path / "run.out"
    with out.open("wb") as f:
        # as a non-interactive shell starts a background job: SIGINT ignored, inherited through exec
        proc = subprocess.Popen(["sh", "-c", 'trap "" INT; exec "$0" -m ops.cli run --count 40', sys.executable],
                                env=env, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while "Ctrl-C stops everything" not in out.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, out.read_text()[-3000:]
            time.sleep(1)
        text = out.read_text()
        assert proc.poll() is None, text[-3000:]
        assert "statuses  200: 200" in text  # 40 per demo source, every one acknowledged
        assert "installs and revenue by partner/campaign" in text and "the pipeline is running" in text
        assert len(processes_of(var)) >= 5  # broker, sink, worker, alerts, ingress

        # a crashed worker (SIGKILL: no goodbye, no commit) comes back by itself and the pipeline carries on
        worker = service_pid(var, "worker")
        assert worker is not None
        before = _events(query_port)
        assert before > 0
        os.kill(worker, signal.SIGKILL)
        while "worker exited (code -9, SIGKILL); restarting in 1s" not in out.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, out.read_text()[-3000:]
            time.sleep(0.5)
        sent = subprocess.run([sys.executable, "-m", "ops.cli", "send", "--count", "10", "--json", "--no-progress"],
                              env={**env, "ATTRIB_CONFIG": str(ROOT / "dev" / "demo.toml")}, cwd=ROOT,
                              capture_output=True, text=True, timeout=120, check=False)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        while _events(query_port) <= before:
            assert time.monotonic() < deadline + 120, out.read_text()[-3000:]
            time.sleep(1)
        restarted = service_pid(var, "worker")
        assert restarted is not None and restarted != worker

        proc.send_signal(signal.SIGINT)
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        leaked = processes_of(var)
        for pid in leaked:  # a failed run must not leave a broker behind for the rest of the suite
            os.kill(pid, signal.SIGKILL)
    assert not leaked, f"still running after the stop: {leaked}"
    assert "stopped: ingress, worker, alerts, sink and broker" in out.read_text()
