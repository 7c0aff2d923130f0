"""The HTTP seam: a failed request is retryable (connection, timeout, 408/425/429/5xx) or permanent (other non-2xx)."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from attrib import http_errors
from attrib.errors import DependencyUnavailable, Permanent
from attrib.http_errors import HttpRejected, HttpUnavailable
from tests.support import free_port


@pytest.mark.parametrize(("status", "kind"), [
    (200, None), (204, None), (400, HttpRejected), (401, HttpRejected), (404, HttpRejected), (413, HttpRejected),
    (408, HttpUnavailable), (425, HttpUnavailable), (429, HttpUnavailable), (500, HttpUnavailable),
    (503, HttpUnavailable), (599, HttpUnavailable), (302, HttpRejected),
])
def test_statuses(status, kind):
    got = http_errors.for_status(status, "body")
    assert (type(got) if got is not None else None) is kind
    if got is not None:
        assert (got.reason, got.status, got.detail) == (f"http_{status}", status, "body")


async def test_real_failures_map_to_our_classes():
    async def gone(_: web.Request) -> web.Response:
        return web.Response(status=404, text="no such thing")

    async def busy(_: web.Request) -> web.Response:
        return web.Response(status=503, text="later")

    app = web.Application()
    app.router.add_get("/gone", gone)
    app.router.add_get("/busy", busy)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession(raise_for_status=True) as session:
            for path, kind in (("/gone", Permanent), ("/busy", DependencyUnavailable)):
                with pytest.raises(aiohttp.ClientResponseError) as e:
                    await session.get(f"http://127.0.0.1:{port}{path}")
                got = http_errors.mapped(e.value)
                assert isinstance(got, kind) and got.reason == f"http_{e.value.status}"
            closed = free_port()  # nothing listens there
            with pytest.raises(aiohttp.ClientError) as refused:
                await session.get(f"http://127.0.0.1:{closed}/")
            got = http_errors.mapped(refused.value)
            assert isinstance(got, HttpUnavailable) and got.reason == "connect_error"
    finally:
        await runner.cleanup()
    assert http_errors.mapped(TimeoutError()).reason == "timeout"
