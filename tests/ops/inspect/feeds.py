"""Records as the ingress / worker / alerting would write them, and a local rejection feed with the ingress's shape."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web
from confluent_kafka import Message, Producer

from attrib.settings import Settings
from schemas import avro


def raw_delivery(source: str, mmp: str, body: bytes = b"", query: str = "", method: str = "POST",
                 user_key: str | None = None) -> dict[str, Any]:
    return {"delivery_id": uuid.uuid4().hex, "source": source, "mmp": mmp, "app_id": None, "method": method,
            "path": f"/webhooks/{source}", "query_string": query,
            "headers": {"content-type": "application/json"} if body else {}, "body": body,
            "remote_addr": "203.0.113.9", "received_at": int(time.time() * 1000),
            "user_key": user_key or "fp:" + uuid.uuid4().hex}


def produce(s: Settings, topic: str, name: str, records: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """Produce and return each record's (topic, partition, offset)."""
    p = Producer({"bootstrap.servers": s.kafka.bootstrap_servers, "partitioner": "murmur2_random"})
    refs: dict[int, tuple[str, int, int]] = {}
    def remember(i: int) -> Callable[[Any, Message], None]:
        return lambda err, m: refs.__setitem__(i, (m.topic() or "", m.partition() or 0, m.offset() or 0))

    for i, r in enumerate(records):
        key = (r.get("user_key") or r.get("alert_id") or r.get("dead_letter_id") or "k").encode()
        p.produce(topic, avro.encode(name, r), key=key, on_delivery=remember(i))
    assert p.flush(30) == 0
    return [refs[i] for i in range(len(records))]


class RejectionFeed:
    """Serves GET /ops/rejections like the ingress: newest first, with the running total."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    async def start(self) -> str:
        app = web.Application()

        async def view(req: web.Request) -> web.Response:
            src = req.query.get("source")
            items = [r for r in reversed(self.items) if not src or r["source"] == src]
            return web.Response(body=json.dumps({"total": len(self.items), "shown": len(items),
                                                 "rejections": items}).encode(), content_type="application/json")

        app.router.add_get("/ops/rejections", view)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}/ops/rejections"

    async def stop(self) -> None:
        await self.runner.cleanup()


def rejection(source: str, reason: str = "signature_mismatch", status: int = 401) -> dict[str, Any]:
    now = time.time()
    return {"at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z",
            "source": source, "status": status, "error": "verification_failed", "reason": reason,
            "client": "198.51.100.7", "method": "POST", "size": 321}
