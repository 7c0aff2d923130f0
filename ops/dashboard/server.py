"""The dashboard's aiohttp app: a static page, the vendored uPlot, and one token-guarded JSON endpoint.

Token handling keeps it out of every log: the page takes it from the URL *fragment* (``/#token=…``, never sent to
a server), keeps it in sessionStorage, and sends it as ``Authorization: Bearer``; the server accepts no token in a
query string, and its access log records method, path (no query) and status only.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from attrib.errors import AttribError
from ops.accesslog import AccessLog
from ops.dashboard import data

STATIC = Path(__file__).resolve().parent / "static"
FILES = {"/": ("index.html", "text/html"), "/dashboard.js": ("dashboard.js", "text/javascript"),
         "/dashboard.css": ("dashboard.css", "text/css"),
         "/vendor/uPlot.iife.min.js": ("vendor/uPlot.iife.min.js", "text/javascript"),
         "/vendor/uPlot.min.css": ("vendor/uPlot.min.css", "text/css")}
# No inline script or style anywhere: uPlot sizes its elements through the CSSOM, which CSP does not restrict.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
    "X-Frame-Options": "DENY", "Cross-Origin-Opener-Policy": "same-origin",
}
log = logging.getLogger("attrib.dashboard")


def make_app(token: str, query: data.Query, days: int = 30) -> web.Application:
    if len(token) < 16:
        raise ValueError("dashboard.token must be at least 16 characters")
    secret = token.encode()

    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        if request.path.startswith("/api/"):  # the page and scripts are static and hold no data
            given = request.headers.get("Authorization", "")
            ok = given.startswith("Bearer ") and hmac.compare_digest(given[7:].strip().encode(), secret)
            if not ok:
                return web.json_response({"error": "unauthorized"}, status=401, headers=SECURITY_HEADERS)
        resp: web.StreamResponse = await handler(request)
        resp.headers.update(SECURITY_HEADERS)
        return resp

    app = web.Application(middlewares=[guard])

    def static(name: str, ctype: str) -> Callable[[web.Request], Any]:
        async def serve(_: web.Request) -> web.FileResponse:
            return web.FileResponse(STATIC / name, headers={"Content-Type": ctype})
        return serve

    for path, (name, ctype) in FILES.items():
        app.router.add_get(path, static(name, ctype))

    async def summary(req: web.Request) -> web.Response:
        try:
            n = int(req.query.get("days", str(days)))
        except ValueError:
            return web.json_response({"error": "days must be an integer"}, status=400)
        if not 1 <= n <= 3660:
            return web.json_response({"error": "days must be 1..3660"}, status=400)
        try:
            body = await asyncio.to_thread(data.collect, query, n)
        except AttribError as exc:  # warehouse unreachable or a query failed (SqlError): say so on the page
            log.warning("dashboard query failed", extra={"fields": {"error": str(exc)[:300]}})
            return web.json_response({"error": f"warehouse query failed: {str(exc)[:300]}"}, status=503)
        return web.json_response(body)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/api/summary", summary)
    app.router.add_get("/healthz", healthz)
    return app


async def serve(app: web.Application, host: str, port: int, stop: asyncio.Event,
                started: asyncio.Event | None = None) -> None:
    runner = web.AppRunner(app, access_log_class=AccessLog, access_log=logging.getLogger("attrib.dashboard.access"))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    if started is not None:
        started.set()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
