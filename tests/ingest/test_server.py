"""`attrib ingest` as the operator runs it: several worker processes on one port, aggregated metrics, clean SIGTERM;
and a client that stops sending mid-body gets 408."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from tests.ingest.conftest import LR_KEY, SOURCES, consume
from tests.support import free_port


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def test_workers_share_the_port_and_stop_cleanly(make_settings, tmp_path):
    from attrib.topics import ensure_topics

    s = make_settings(topics={"partitions": 4})
    ensure_topics(s)
    port = free_port()
    env = {**os.environ, "ATTRIB_KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers,
           "ATTRIB_TOPICS__RAW": s.topics.raw,
           "ATTRIB_TOPICS__DEAD_LETTERS": s.topics.dead_letters, "ATTRIB_VAR_DIR": str(tmp_path / "var"),
           "ATTRIB_SOURCES": json.dumps([x for x in SOURCES if x["name"] == "lr"])}
    proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "ingest", "--port", str(port), "--workers", "2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if _get(url + "/readyz")[0] == 200:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("ingress not ready: " + proc.stderr.read1().decode()[-2000:])  # type: ignore[attr-defined]
        n = 40
        for i in range(n):  # new connection each time: the kernel spreads them over both workers
            body = json.dumps({"event_type": "install", "gaid": f"{i:08x}-1111-4111-8111-111111111111"}).encode()
            req = urllib.request.Request(url + "/webhooks/lr", data=body, method="POST",
                                         headers={"Content-Type": "application/json", "linkrunner-key": LR_KEY})
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 200
        status, metrics = _get(url + "/metrics")
        assert status == 200
        line = next(x for x in metrics.decode().splitlines()
                    if x.startswith('attrib_ingest_requests_total{source="lr",status="200"}'))
        assert float(line.split()[-1]) == n  # summed over the worker processes
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert err.decode().count('"ingress stopped"') == 2  # both workers drained and stopped
    assert len(consume(s, s.topics.raw, n)) == n


async def test_slow_body_times_out_with_408(start_ingress):
    ing = await start_ingress(read_timeout_s=0.5)
    port = int(ing.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /webhooks/lr HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"linkrunner-key: " + LR_KEY.encode() + b"\r\nContent-Length: 100\r\n\r\n{\"event_type\"")
    await writer.drain()
    head = await asyncio.wait_for(reader.readline(), 30)  # then nothing more is sent
    writer.close()
    assert head.startswith(b"HTTP/1.1 408")
