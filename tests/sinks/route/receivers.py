"""Real local HTTP receivers (aiohttp) whose behaviour per request is scripted by the test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Hit:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """``behave(hit, n_for_this_key) -> (status, headers)``; default 200. ``hang`` sleeps before answering."""

    behave: Callable[[Hit, int], tuple[int, dict[str, str]]] = lambda h, n: (200, {})
    hang: float = 0.0
    hits: list[Hit] = field(default_factory=list)
    port: int = 0
    _runner: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, req: web.Request) -> web.Response:
        hit = Hit(req.method, req.path, req.query_string, dict(req.headers), await req.read(), time.monotonic())
        self.hits.append(hit)
        if self.hang:
            await asyncio.sleep(self.hang)
        n = sum(1 for h in self.hits if h.headers.get("Idempotency-Key") == hit.headers.get("Idempotency-Key"))
        status, headers = self.behave(hit, n)
        return web.Response(status=status, headers=headers, text=f"status {status} for attempt {n}")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        await self._runner.cleanup()

    def keys(self) -> list[str]:
        return [h.headers.get("Idempotency-Key", "") for h in self.hits]
