"""`attrib tail` as a real subprocess on the test broker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid

import pytest

from attrib.topics import ensure_topics
from tests.ops.inspect.feeds import RejectionFeed, produce, raw_delivery, rejection

pytestmark = pytest.mark.timeout(120)
SECRET = "whsec-" + uuid.uuid4().hex


def env_for(s, **extra: str) -> dict[str, str]:
    t = s.topics
    return {**{k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")},
            "ATTRIB_KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers, "ATTRIB_TOPICS__RAW": t.raw,
            "ATTRIB_TOPICS__DEAD_LETTERS": t.dead_letters, "ATTRIB_VAR_DIR": str(s.var_dir),
            "ATTRIB_SOURCES": json.dumps([{"name": "branch-main", "mmp": "branch", "verify": ["hmac"],
                                           "secrets": [SECRET]},
                                          {"name": "other", "mmp": "generic", "verify": ["none"]}]),
            **extra}


async def lines(proc: asyncio.subprocess.Process, n: int) -> list[str]:
    out: list[str] = []
    assert proc.stdout is not None
    try:
        while len(out) < n:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            if not line:
                break
            out.append(line.decode())
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:  # never leave a tail running behind a failed test
            proc.kill()
            await proc.wait()
    return out


async def test_tail_accepted_with_source_filter_and_payload(make_settings) -> None:
    s = make_settings(topics={"partitions": 1})
    await asyncio.to_thread(ensure_topics, s)
    recs = [raw_delivery("branch-main", "branch", json.dumps({"n": i, "secret": SECRET}).encode(),
                         user_key="idfa:ABCDEF12-0000") for i in range(3)] + [raw_delivery("other", "generic", b"{}")]
    await asyncio.to_thread(produce, s, s.topics.raw, "raw_delivery", recs)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ops.cli", "tail", "--since", "10", "--source", "branch-main", "--payload",
        env=env_for(s), stdout=subprocess.PIPE)
    out = await lines(proc, 3 * 5)  # each delivery: a line + the pretty-printed body (4 lines)
    text = "".join(out)
    heads = [x for x in out if not x.startswith("    ")]
    assert len(heads) >= 3 and all(" branch-main " in h and " accepted " in h and "hmac" in h for h in heads)
    assert "idfa:ABCD…" in text and '"secret": "[secret]"' in text
    assert SECRET not in text and "other" not in text


async def test_tail_rejected(make_settings) -> None:
    s = make_settings()
    feed = RejectionFeed([rejection("branch-main"), rejection("other", "ip_not_allowed", 403)])
    url = await feed.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ops.cli", "tail", "--rejected", env=env_for(s, ATTRIB_INSPECTOR__REJECTIONS_URL=url),
            stdout=subprocess.PIPE)
        out = await lines(proc, 2)
    finally:
        await feed.stop()
    assert " branch-main " in out[0] and "rejected" in out[0] and "401" in out[0] and "signature_mismatch" in out[0]
    assert " other " in out[1] and "403" in out[1] and "ip_not_allowed" in out[1]
