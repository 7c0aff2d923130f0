"""The inspector's two inputs against the real ingress: rejections from its /ops/rejections, accepted deliveries
from the raw topic it writes."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from attrib.topics import ensure_topics
from ingest import server
from ops.inspect.feed import KafkaFeed, RejectionPoller
from ops.inspect.server import apply, rejections_url
from ops.inspect.store import Store
from tests.support import free_port

pytestmark = pytest.mark.timeout(120)
TOKEN = "lr_priv_6f1c2a9e4b7d"


async def test_real_ingress_feeds_the_inspector(make_settings) -> None:
    s = make_settings(sources=[{"name": "lr", "mmp": "linkrunner", "verify": ["token"], "secrets": [TOKEN],
                                "options": {"token_header": "X-Webhook-Token"}}],
                      ingest={"host": "127.0.0.1", "port": free_port()}, topics={"partitions": 2})
    await asyncio.to_thread(ensure_topics, s)
    runner = await server.start(s, reuse_port=False)
    store = Store()
    loop = asyncio.get_running_loop()
    feed = KafkaFeed(s, lambda item: loop.call_soon_threadsafe(apply, store, item), int(time.time() * 1000) - 60_000)
    feed.start()
    poller = RejectionPoller(rejections_url(s), lambda item: apply(store, item), interval_s=0.2)
    poller.start()
    body = json.dumps({"event_type": "signup", "user_id": "usr_1", "gaid": "9b8a7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
                       "attributed_on": "2024-10-22T19:45:03.007Z", "installed_at": "2024-10-22T19:31:10.742Z"})
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{s.ingest.port}/webhooks/lr"
            async with http.post(base, data=body, headers={"X-Webhook-Token": TOKEN,
                                                            "Content-Type": "application/json"}) as r:
                assert r.status == 200
            async with http.post(base, data=body, headers={"X-Webhook-Token": "wrong",
                                                            "Content-Type": "application/json"}) as r:
                assert r.status == 401
            # verified but not JSON: answered 400 AND kept on the dead-letter topic — one delivery, one row
            async with http.post(base, data=b"{not json", headers={"X-Webhook-Token": TOKEN,
                                                                   "Content-Type": "application/json"}) as r:
                assert r.status == 400
                kept = (await r.json())["delivery_id"]
        deadline = time.monotonic() + 60
        # the 400 shows first as a rejection (poller), then the dead letter (Kafka) takes its row over
        while ({r.status for r in store.rows} != {"accepted", "rejected", "dead_letter"} or poller.total is None
               or poller.total < 2) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)  # a second copy, if any, would come from the next poll
        got = {r.status: r for r in store.rows}
        assert len(store.rows) == 3 and set(got) == {"accepted", "rejected", "dead_letter"}, store.since(0)
        assert got["dead_letter"].delivery_id == kept and got["dead_letter"].http_status == 400
        acc, rej = got["accepted"], got["rejected"]
        assert (acc.source, acc.method, acc.http_status, acc.verification, acc.reason) == ("lr", "POST", 200,
                                                                                           "passed", "token")
        assert acc.size == len(body) and acc.user_key.startswith("gaid:9b8a…") and "usr_1" in acc.payload
        assert "9b8a7c6d-5e4f" not in acc.payload
        assert (rej.source, rej.http_status, rej.verification, rej.size) == ("lr", 401, "failed", len(body))
        assert rej.reason and not rej.payload
        assert all(TOKEN not in json.dumps(r.public()) for r in store.rows)
    finally:
        await poller.stop()
        await asyncio.to_thread(feed.stop)
        await runner.cleanup()
