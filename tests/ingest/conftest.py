"""Ingress fixtures: a real server (in this test's event loop) on a free port, producing to the session broker, and a
consumer that reads records back."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import yarl
from confluent_kafka import Consumer, TopicPartition

from attrib.settings import Settings
from attrib.topics import ensure_topics
from ingest import server
from schemas import avro
from tests.support import free_port

LR_KEY = "lr_priv_6f1c2a9e4b7d"
HMAC_SECRET = "It's a Secret to Everybody"
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STRIPE_SECRET = "whsec_test_secret"

SOURCES: list[dict[str, Any]] = [
    {"name": "lr", "mmp": "linkrunner", "verify": ["token"], "secrets": [LR_KEY]},
    {"name": "gen", "mmp": "generic", "verify": ["hmac"], "secrets": ["old-secret", HMAC_SECRET],
     "options": {"hmac_header": "X-Hub-Signature-256", "hmac_prefix": "sha256="}},
    {"name": "gen64", "mmp": "generic", "verify": ["hmac"], "secrets": [HMAC_SECRET],
     "options": {"hmac_encoding": "base64"}},
    {"name": "sw", "mmp": "generic", "verify": ["standard_webhooks"], "secrets": [SW_SECRET]},
    {"name": "st", "mmp": "generic", "verify": ["stripe"], "secrets": [STRIPE_SECRET]},
    {"name": "br", "mmp": "branch", "verify": ["url_secret"], "secrets": ["s3cr3t-tok3n"], "methods": ["GET", "POST"]},
    {"name": "adj", "mmp": "adjust", "verify": ["url_secret"], "secrets": ["adj-secret"], "methods": ["GET"]},
    {"name": "af", "mmp": "appsflyer", "verify": ["basic"], "secrets": ["af:pa55word"]},
    {"name": "sg", "mmp": "singular", "verify": ["ip_allowlist"], "ip_allowlist": ["198.134.6.0/23"]},
    {"name": "sg-tok", "mmp": "singular", "verify": ["token"], "secrets": ["t0k"], "ip_allowlist": ["127.0.0.1/32"]},
    {"name": "tls", "mmp": "generic", "verify": ["token"], "secrets": ["t0k"], "options": {"https_only": True}},
    # the published vectors carry 2021 timestamps: these two accept them (a window of ~300 years)
    {"name": "sw-vec", "mmp": "generic", "verify": ["standard_webhooks"], "secrets": [SW_SECRET],
     "options": {"tolerance_s": 1e10}},
    {"name": "st-vec", "mmp": "generic", "verify": ["stripe"], "secrets": [STRIPE_SECRET],
     "options": {"tolerance_s": 1e10}},
]


@dataclass
class Ingress:
    url: str
    settings: Settings
    session: aiohttp.ClientSession
    runner: Any

    def source(self, name: str) -> Any:
        src = self.settings.source(name)
        assert src is not None
        return src

    async def send(self, out: Any, sign_as: str | None = None, secret: str | None = None,
                   now: float | None = None) -> tuple[int, dict[str, Any], Any]:
        """Sign ``out`` for source ``sign_as`` (unless None) and send it → (status, JSON body, headers)."""
        import time

        from ops.traffic import signing

        if sign_as is not None:
            signing.sign(self.source(sign_as), out, time.time() if now is None else now, secret)
        url = yarl.URL(signing.url(self.url, out), encoded=True)  # the query goes out byte for byte
        async with self.session.request(out.method, url, data=out.body if out.body else None,
                                        headers=out.headers, skip_auto_headers=("Content-Type",)) as r:
            text = await r.text()
            return r.status, (json.loads(text) if text else {}), r.headers

    def consume(self, n: int, topic: str | None = None, timeout_polls: int = 60) -> list[tuple[Any, dict[str, Any]]]:
        """Read ``n`` records (from the start) of ``topic`` (default raw) → [(message, decoded record)]."""
        return consume(self.settings, topic or self.settings.topics.raw, n, timeout_polls)


def consume(s: Settings, topic: str, n: int, timeout_polls: int = 60) -> list[tuple[Any, dict[str, Any]]]:
    c = Consumer({"bootstrap.servers": s.kafka.bootstrap_servers, "group.id": f"t-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(s.topics.partitions)])
    out: list[tuple[Any, dict[str, Any]]] = []
    try:
        for _ in range(timeout_polls):
            for msg in c.consume(num_messages=1000, timeout=0.5):
                assert msg.error() is None, msg.error()
                out.append((msg, avro.decode(msg.value())[1]))
            if len(out) >= n:
                break
    finally:
        c.close()
    return out


@pytest.fixture
async def start_ingress(make_settings: Callable[..., Settings]) -> AsyncIterator[Callable[..., Any]]:
    started: list[Ingress] = []

    async def start(sources: list[dict[str, Any]] | None = None, kafka_bootstrap: str | None = None,
                    **ingest: Any) -> Ingress:
        extra: dict[str, Any] = {}
        if kafka_bootstrap:
            extra["kafka"] = {"bootstrap_servers": kafka_bootstrap, "produce_timeout_s": 2.0}
        s = make_settings(sources=sources if sources is not None else SOURCES,
                          ingest={"host": "127.0.0.1", "port": free_port(), **ingest},
                          topics={"partitions": 4}, **extra)
        ensure_topics(s)
        runner = await server.start(s, reuse_port=False)
        scheme = "https" if s.ingest.tls_cert else "http"
        ing = Ingress(f"{scheme}://127.0.0.1:{s.ingest.port}", s, aiohttp.ClientSession(), runner)
        started.append(ing)
        return ing

    yield start
    for ing in started:
        await ing.session.close()
        await ing.runner.cleanup()  # a no-op when the test already stopped it
