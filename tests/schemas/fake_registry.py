"""A fake Confluent Schema Registry: the part of its documented REST API (v1) the project calls, served by aiohttp's
test server on a thread of its own (the client under test is synchronous; services in other processes reach it over
HTTP too). It validates requests as the registry does and answers with the registry's documented error bodies
(``{"error_code": …, "message": …}``):

- ``POST /subjects/{subject}/versions`` ``{"schema": "<Avro JSON>"[, "schemaType": "AVRO"]}`` → ``{"id": n}``; one id
  per distinct schema across subjects; 415 for another content type, 422 / 42201 for an invalid schema.
- ``GET /schemas/ids/{id}`` → ``{"schema": "<Avro JSON>"}``; 404 / 40403 "Schema not found" for an unknown id.
- any other path: aiohttp's own plain 404 (what a wrong base URL or a proxy answers: not the registry's 40403).

``failure = (status, error_code)`` makes every request fail that way (e.g. ``(500, 50001)``, "Error in the backend
datastore") until it is set back to None.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import fastavro
from aiohttp import web
from aiohttp.test_utils import TestServer

CONTENT_TYPES = {"application/vnd.schemaregistry.v1+json", "application/vnd.schemaregistry+json", "application/json"}
MESSAGES = {40403: "Schema not found", 42201: "Invalid schema", 50001: "Error in the backend datastore",
            415: "HTTP 415 Unsupported Media Type", 40101: "Unauthorized"}


def _error(status: int, code: int, message: str | None = None) -> web.Response:
    return web.json_response({"error_code": code, "message": message or MESSAGES.get(code, "error")}, status=status,
                             content_type="application/vnd.schemaregistry.v1+json")


class FakeRegistry:
    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.calls: list[str] = []
        self.failure: tuple[int, int] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        app = web.Application(middlewares=[self._record])
        app.router.add_post("/subjects/{subject}/versions", self._register)
        app.router.add_get("/schemas/ids/{id}", self._by_id)
        self._server = TestServer(app, host="127.0.0.1")
        self._run(self._server.start_server(access_log=None))  # a line per request outlives pytest's capture

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    def close(self) -> None:
        if self._loop.is_running():
            self._run(self._server.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.calls.append(f"{request.method} {request.path}")
        if self.failure is not None:
            return _error(*self.failure)
        return await handler(request)

    async def _register(self, request: web.Request) -> web.Response:
        if request.content_type not in CONTENT_TYPES:
            return _error(415, 415)
        try:
            body = json.loads(await request.read())
            text = body["schema"]
            if not isinstance(text, str) or body.get("schemaType", "AVRO") != "AVRO":
                raise ValueError("schema must be a string holding an Avro schema")
            fastavro.parse_schema(json.loads(text), named_schemas={})
        except (ValueError, KeyError, TypeError, AttributeError, fastavro.schema.SchemaParseException) as exc:
            return _error(422, 42201, f"Invalid schema: {exc}")
        sid = next((i for i, s in self.schemas.items() if s == text), len(self.schemas) + 1)
        self.schemas[sid] = text
        versions = self.subjects.setdefault(request.match_info["subject"], [])
        if sid not in versions:
            versions.append(sid)
        return web.json_response({"id": sid}, content_type="application/vnd.schemaregistry.v1+json")

    async def _by_id(self, request: web.Request) -> web.Response:
        try:
            sid = int(request.match_info["id"])
        except ValueError:
            return _error(404, 404, "HTTP 404 Not Found")
        if sid not in self.schemas:
            return _error(404, 40403)
        return web.json_response({"schema": self.schemas[sid]}, content_type="application/vnd.schemaregistry.v1+json")
