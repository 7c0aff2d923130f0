"""JSON error bodies ``{"error": "<code>", "detail": "…"}``. The table in README "Ingress" lists every code; the detail
never says which part of verification failed (that goes to metrics and /ops/rejections only)."""

from __future__ import annotations

import json

from aiohttp import web

from attrib.errors import AttribError


class IngestError(AttribError):
    """A request that gets an error answer; raised anywhere on the request path, answered by the handler."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None,
                 reason: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers or {}
        self.reason = reason or code  # the internal reason (metrics / rejections), may be finer than `code`
        self.delivery_id: str | None = None  # set when the delivery was kept (dead-lettered) despite the error


def response(status: int, code: str, detail: str, headers: dict[str, str] | None = None,
             delivery_id: str | None = None) -> web.Response:
    out = {"error": code, "detail": detail}
    if delivery_id is not None:
        out["delivery_id"] = delivery_id
    return web.Response(status=status, body=json.dumps(out).encode(), content_type="application/json",
                        headers=headers)


def from_error(e: IngestError) -> web.Response:
    return response(e.status, e.code, e.detail, e.headers, e.delivery_id)


# Constructors for the codes of the table in README "Ingress"
def unknown_source(name: str) -> IngestError:
    return IngestError(404, "unknown_source", f"no source named {name!r} is configured")


def method_not_allowed(method: str, allowed: frozenset[str]) -> IngestError:
    allow = ", ".join(sorted(allowed))
    return IngestError(405, "method_not_allowed", f"{method} is not allowed for this source (allowed: {allow})",
                       {"Allow": allow})


def verification_failed(reason: str) -> IngestError:
    return IngestError(401, "verification_failed", "the delivery could not be verified", reason=reason)


def ip_not_allowed() -> IngestError:
    return IngestError(403, "ip_not_allowed", "the sender address is not on this source's allowlist")


def https_required() -> IngestError:
    return IngestError(403, "https_required", "this source accepts deliveries over HTTPS only")


def too_large(limit: int) -> IngestError:
    return IngestError(413, "body_too_large", f"the body exceeds {limit} bytes (after decompression)")


def unsupported_type(ct: str, allowed: frozenset[str]) -> IngestError:
    return IngestError(415, "unsupported_media_type",
                       f"content type {ct or '(none)'!r} is not accepted; use one of {', '.join(sorted(allowed))}")


def unsupported_encoding(enc: str) -> IngestError:
    return IngestError(415, "unsupported_content_encoding", f"content encoding {enc!r} is not accepted; use gzip, "
                       "deflate or none")


def bad_encoding(detail: str) -> IngestError:
    return IngestError(400, "bad_content_encoding", detail)


def timeout(seconds: float) -> IngestError:
    return IngestError(408, "request_timeout", f"the body did not arrive within {seconds:g} s")


def unavailable(retry_after: int, reason: str) -> IngestError:
    return IngestError(503, "kafka_unavailable", "the delivery could not be stored; retry later",
                       {"Retry-After": str(retry_after)}, reason=reason)


def record_too_large(size: int, limit: int) -> IngestError:
    # the body passed ingest.max_body_bytes, but with its headers the record exceeds what Kafka takes: every retry
    # would fail the same way, so this is the sender's 413, not a 503
    return IngestError(413, "body_too_large", f"the delivery with its headers is {size} bytes; the limit is {limit}",
                       reason="record_too_large")


def client_closed() -> IngestError:
    # nginx's 499: nobody reads the answer; a 4xx-class label so a sender hanging up is no 5xx alarm
    return IngestError(499, "client_closed", "the client closed the connection before the body was complete")
