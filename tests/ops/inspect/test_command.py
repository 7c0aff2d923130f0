"""`attrib inspect` as a real subprocess: what it writes to its logs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request
import uuid

import pytest

from tests.support import free_port

pytestmark = pytest.mark.timeout(120)


async def test_the_token_in_the_page_url_never_reaches_the_access_log(make_settings) -> None:  # type: ignore[no-untyped-def]
    s = make_settings()
    token = "insp-" + uuid.uuid4().hex
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")},
           "ATTRIB_KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers, "ATTRIB_VAR_DIR": str(s.var_dir),
           "ATTRIB_TOPICS__RAW": s.topics.raw, "ATTRIB_INSPECTOR__ENABLED": "true", "ATTRIB_INSPECTOR__TOKEN": token,
           "ATTRIB_INSPECTOR__PORT": str(port), "ATTRIB_INSPECTOR__REJECTIONS_URL": f"http://127.0.0.1:{free_port()}/"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "ops.cli", "inspect", env=env,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert b"inspector on" in first and token.encode() not in first

        def get(path: str) -> int:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                return int(r.status)

        assert await asyncio.to_thread(get, f"/?token={token}") == 200  # the documented URL
        assert await asyncio.to_thread(get, f"/api/summary?token={token}") == 200
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = err.decode()
    assert token not in log  # the query string is not logged …
    assert '"path": "/api/summary"' in log and '"status": 200' in log  # … the requests still are
