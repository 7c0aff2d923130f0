"""A request-head deadline for aiohttp, which has none: a connection whose request line and headers are not complete
within ``ingest.header_timeout_s`` — of the connection opening, or of the first byte of a keep-alive connection's next
request — is answered ``408`` and closed. Without it a client sending headers at 1 byte/s (or only blank lines)
holds a connection for the whole keep-alive timeout (75 s), and a few thousand of them hold the process.

The body has its own deadline (``ingest.read_timeout_s``, ingest/body.py); idle keep-alive connections keep aiohttp's
``keepalive_timeout``. Built on aiohttp's RequestHandler: ``_request_count`` (messages parsed so far),
``_request_in_progress``, ``_messages`` and ``_waiter`` (idle, waiting for a request) — tests/ingest/test_http.py
drives it with raw sockets, so an aiohttp upgrade that changes them fails there, not in production."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ingest import metrics

_BODY = json.dumps({"error": "request_timeout", "detail": "the request headers did not arrive in time"}).encode()
TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(_BODY), _BODY))


class HeadDeadlineHandler(RequestHandler):
    __slots__ = ("_head_timer",)

    def __init__(self, manager: web.Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()  # a connection that never completes a head is closed, whatever it sends (or doesn't)

    def data_received(self, data: bytes) -> None:
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:  # a head is complete (or refused by the parser): its deadline is met
            self._disarm()
        elif self._head_timer is None and not self._request_in_progress and not self._messages:
            self._arm()  # first bytes of the next request on a kept-alive connection

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        timeout = getattr(self._manager, "header_timeout", None)
        if timeout:
            self._head_timer = self._loop.call_later(timeout, self._expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expired(self) -> None:
        self._head_timer = None
        # only while aiohttp waits for a request: a body being read or a response being written has other bounds
        if self._waiter is None or self._waiter.done() or self._messages or self._request_in_progress:
            return
        metrics.HEADER_TIMEOUTS.inc()
        if self.transport is not None:
            self.transport.write(TIMEOUT_RESPONSE)  # close() below still flushes it
        self.force_close()


class HeadDeadlineServer(web.Server):
    header_timeout: float = 0.0

    def __call__(self) -> RequestHandler:
        return HeadDeadlineHandler(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """``web.AppRunner`` whose connections have a request-head deadline (0 = none, aiohttp's behaviour)."""

    def __init__(self, app: web.Application, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._header_timeout = header_timeout

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # same object, one overridden method (which protocol class it builds): keeps every handler argument the
        # Application and the runner passed, without copying aiohttp's private construction here
        server.__class__ = HeadDeadlineServer
        assert isinstance(server, HeadDeadlineServer)
        server.header_timeout = self._header_timeout
        return server
