"""A real local HTTP server standing in for Slack incoming webhooks: records every request and answers from a
script (e.g. 429 with Retry-After, 500) before falling back to Slack's plain ``ok``. Runs its own loop in a thread
so both sync and async tests can use it."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Request:
    path: str
    body: dict[str, Any]
    at: float  # time.monotonic() on arrival
    status: int


@dataclass
class FakeSlack:
    script: list[tuple[int, dict[str, str], str]] = field(default_factory=list)  # (status, headers, body) in order
    requests: list[Request] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def accepted(self, path: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.status == 200 and (path is None or r.path == path)]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            status, headers, text = self.script.pop(0) if self.script else (200, {}, "ok")
            self.requests.append(Request(request.path, body, time.monotonic(), status))
        return web.Response(status=status, headers=headers, text=text)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> FakeSlack:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        async def down() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(down(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def wait_for(self, n: int, timeout: float = 120.0, path: str | None = None) -> list[Request]:
        """Block until ``n`` messages were accepted (a condition, not a timing assertion)."""
        deadline = time.monotonic() + timeout
        while len(self.accepted(path)) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fake Slack got {len(self.accepted(path))} of {n} messages")
            time.sleep(0.1)
        return self.accepted(path)
