"""`attrib run` with a port another process already serves: said before anything starts (no signed demo traffic to
that process), and readiness only ever comes from the child `attrib run` started."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ops.supervise import Service, ServiceError
from tests.ops.pipeline import processes_of
from tests.ops.test_run import ROOT
from tests.support import free_port

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def stranger() -> Iterator[tuple[int, list[str]]]:
    """Someone else's HTTP server on a loopback port, answering 200 to everything and noting what it got."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _ok(self) -> None:
            seen.append(f"{self.command} {self.path}")
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST = _ok

        def log_message(self, *_: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd.server_address[1], seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_taken_ingress_port_stops_attrib_run_before_anything_starts(tmp_path: Path, stranger) -> None:  # type: ignore[no-untyped-def]
    port, seen = stranger
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")} | {
        "ATTRIB_VAR_DIR": str(var), "ATTRIB_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "ATTRIB_STACK__CONTROLLER_PORT": str(free_port()), "ATTRIB_STACK__JARS_DIR": str(ROOT / "var/kafka/lib"),
        "ATTRIB_INGEST__PORT": str(port), "ATTRIB_SINK__QUERY_PORT": str(free_port()),
        "ATTRIB_STREAMS__METRICS_PORT": str(free_port()),
        "ATTRIB_ALERTS__READY_PORT": str(free_port())}
    try:
        got = subprocess.run([sys.executable, "-m", "ops.cli", "run", "--exit", "--count", "5"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=100)
    finally:
        for pid in processes_of(var):
            os.kill(pid, 9)
    assert got.returncode == 1, got.stdout[-2000:]
    assert f"port {port} (ingest.port) is already in use by pid {os.getpid()}" in got.stdout
    assert "ATTRIB_INGEST__PORT" in got.stdout and "sent" not in got.stdout
    assert seen == []  # no readiness probe, no signed demo delivery went to the stranger


def test_readiness_is_the_childs_own(tmp_path: Path, stranger) -> None:  # type: ignore[no-untyped-def]
    """A ready URL answered by another process does not make a child that listens nowhere ready."""
    port, seen = stranger
    svc = Service("quiet", [sys.executable, "-c", "import time; time.sleep(60)"], f"http://127.0.0.1:{port}/ready")
    svc.start(tmp_path / "logs")
    try:
        with pytest.raises(ServiceError, match="not ready"):
            svc.wait_ready(3)
    finally:
        svc.stop()
    assert seen  # the stranger did answer: only its pid made the difference


def test_readiness_from_the_child_itself_passes(tmp_path: Path) -> None:
    port = free_port()
    svc = Service("web", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                  f"http://127.0.0.1:{port}/")
    svc.start(tmp_path / "logs")
    try:
        svc.wait_ready(30)
    finally:
        svc.stop()
