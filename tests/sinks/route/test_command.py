"""`attrib route` as a user runs it: the README's example destinations, the start-up line, and where a new consumer
group starts (route.start, default latest: not the whole retained history at once)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.sinks.route.events import enriched
from tests.sinks.route.receivers import Receiver
from tests.sinks.route.test_router import produce, settings_for, until

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.timeout(180)


def _readme_routes(tmp_path: Path) -> Path:
    blocks = [b for b in re.findall(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
              if 'name = "partner-postback"' in b]
    assert len(blocks) == 1
    cfg = tmp_path / "routes.toml"
    cfg.write_text(blocks[0])
    return cfg


def _env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")}, **extra}


def test_readme_partner_postback_sends_for_an_install(tmp_path: Path) -> None:
    """The example used to need event.revenue, which installs never have: every match was skipped."""
    env = _env(ATTRIB_CONFIG=str(_readme_routes(tmp_path)), ATTRIB_VAR_DIR=str(tmp_path / "var"))
    check = subprocess.run([sys.executable, "-m", "ops.cli", "route", "--check"], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    dry = subprocess.run([sys.executable, "-m", "ops.cli", "route", "--dry-run"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    install = next(part for part in dry.stdout.split("== ")
                   if part.startswith("partner-postback") and " install " in part.splitlines()[0])
    assert "not sent" not in install and "GET https://partner.example/pb?…" in install, install


async def test_a_new_group_starts_at_latest_and_says_so(make_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rx = await Receiver().start()
    proc = None
    try:
        s = settings_for(make_settings, tmp_path, [{"name": "hook", "url": rx.url + "/hook"}], partitions=1)
        old = [enriched() for _ in range(5)]
        await asyncio.to_thread(produce, s, old)  # history the new group must not send
        t = s.topics
        env = _env(ATTRIB_KAFKA__BOOTSTRAP_SERVERS=s.kafka.bootstrap_servers, ATTRIB_VAR_DIR=str(s.var_dir),
                   ATTRIB_TOPICS__EVENTS=t.events, ATTRIB_TOPICS__DEAD_LETTERS=t.dead_letters,
                   ATTRIB_TOPICS__PARTITIONS="1", ATTRIB_ROUTE__METRICS_PORT="0",
                   ATTRIB_ROUTE__GROUP_ID="route-" + uuid.uuid4().hex[:8],
                   ATTRIB_ROUTE__DESTINATIONS=json.dumps([{"name": "hook", "url": rx.url + "/hook",
                                                            "concurrency": 1}]))
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "ops.cli", "route", env=env, cwd=ROOT,
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert t.events in first and "hook" in first and "starts at latest" in first, first
        while True:  # the log line with the positions: routing begins exactly there
            line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
            assert line, "attrib route exited"
            if "route partitions assigned" in line:
                assert json.loads(line)["offsets"] == {"0": 5}
                break
        new = enriched()
        await asyncio.to_thread(produce, s, [new])
        await until(lambda: len(rx.hits) >= 1)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        assert [h.headers["Idempotency-Key"] for h in rx.hits] == [new["event_id"]]
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await rx.stop()


@pytest.mark.parametrize(("dest", "named"), [
    ({"url": "https://x.example/h?u={{ nosuch.path }}"}, "'nosuch.path'"),
    ({"url": "https://x.example/h", "filters": {"wat.ever": "1"}}, "'wat.ever'"),
    ({"url": "https://x.example/h", "body": '{"r": {{ event.revenu }}}'}, "'event.revenu'"),
])
def test_route_check_refuses_key_paths_no_event_has(tmp_path: Path, dest: dict, named: str) -> None:
    env = _env(ATTRIB_VAR_DIR=str(tmp_path / "var"),
               ATTRIB_ROUTE__DESTINATIONS=json.dumps([{"name": "hook", **dest}]))
    got = subprocess.run([sys.executable, "-m", "ops.cli", "route", "--check"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert got.returncode == 2 and "destination hook" in got.stdout and named in got.stdout, got.stdout
