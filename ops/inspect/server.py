"""The inspector's aiohttp app: one static page + JSON endpoints; every data request needs the token."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from attrib.settings import Settings
from ops.accesslog import AccessLog
from ops.inspect.feed import Item, KafkaFeed, RejectionPoller
from ops.inspect.store import Store

STATIC = Path(__file__).resolve().parent / "static"
STORE = web.AppKey("store", Store)
HOUR_MS = 3_600_000
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
    "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def rejections_url(s: Settings) -> str:
    host = s.ingest.host if s.ingest.host not in ("0.0.0.0", "::") else "127.0.0.1"
    return s.inspector.rejections_url or f"http://{host}:{s.ingest.port}/ops/rejections"


def make_app(s: Settings, store: Store | None = None) -> web.Application:
    if s.inspector.token is None or not s.inspector.token.get_secret_value():
        raise ValueError("inspector.token must be set (ATTRIB_INSPECTOR__TOKEN)")
    token = s.inspector.token.get_secret_value().encode()

    @web.middleware
    async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/api/"):  # the page and script are static and hold no data
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() \
                or request.query.get("token", "")
            if not hmac.compare_digest(given.encode(), token):
                return web.json_response({"error": "unauthorized"}, status=401, headers=SECURITY_HEADERS)
        resp = await handler(request)
        resp.headers.update(SECURITY_HEADERS)
        return resp

    app = web.Application(middlewares=[auth])
    app[STORE] = st = store or Store(keep=s.inspector.keep)

    async def page(_: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def script(_: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "inspector.js", headers={"Content-Type": "text/javascript"})

    async def deliveries(req: web.Request) -> web.Response:
        try:
            after = int(req.query.get("after", "0"))
        except ValueError:
            return web.json_response({"error": "after must be an integer"}, status=400)
        rows = st.since(after, req.query.get("source") or None, req.query.get("status") or None)
        return web.json_response({"rows": rows, "seq": max([after] + [r["seq"] for r in rows])})

    async def summary(_: web.Request) -> web.Response:
        now = int(time.time() * 1000)
        return web.json_response({"now": now, "rates": st.rates(now), "sources": st.sources(),
                                  "alerts": sorted(st.alerts.values(), key=lambda a: str(a.get("created_at")))})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/", page)
    app.router.add_get("/inspector.js", script)
    app.router.add_get("/api/deliveries", deliveries)
    app.router.add_get("/api/summary", summary)
    app.router.add_get("/healthz", healthz)
    return app


def apply(st: Store, item: Item) -> None:
    if item[0] == "row":
        st.add(item[1], item[2])
    elif item[0] == "outcome":
        st.outcome(item[1], item[2], item[3], item[4])
    elif item[0] == "alert":
        st.alert(item[1])


async def serve(s: Settings, stop: asyncio.Event, *, port: int | None = None,
                started: asyncio.Event | None = None) -> None:
    """Run the inspector until ``stop``: Kafka feed (last hour), rejection poller, web app."""
    loop = asyncio.get_running_loop()
    app = make_app(s)
    st = app[STORE]

    def emit(item: Item) -> None:  # called from the feed thread: mutate the store on the loop only
        loop.call_soon_threadsafe(apply, st, item)

    now = int(time.time() * 1000)
    feed = KafkaFeed(s, emit, now - HOUR_MS, now - 7 * 24 * HOUR_MS)
    feed.start()
    poller = RejectionPoller(rejections_url(s), lambda item: apply(st, item))
    poller.start()
    # the page is opened as /?token=…: the access log must not keep the query string
    runner = web.AppRunner(app, access_log_class=AccessLog, access_log=logging.getLogger("attrib.inspect.access"))
    await runner.setup()
    site = web.TCPSite(runner, s.inspector.host, port if port is not None else s.inspector.port)
    await site.start()
    if started:
        started.set()
    try:
        await stop.wait()
    finally:
        await poller.stop()
        await runner.cleanup()
        await loop.run_in_executor(None, feed.stop)
