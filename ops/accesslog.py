"""An aiohttp access log for the operator pages: method, path without its query string, status, duration.

A page that takes its token in the URL (``/?token=…``) must not write it to a log; aiohttp's default format logs the
whole request line, query included.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger


class AccessLog(AbstractAccessLogger):
    """Nothing a secret could ride in: no query string, no headers."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("request", extra={"fields": {"method": request.method, "path": request.path,
                                                     "status": response.status, "ms": round(time * 1000, 1)}})
