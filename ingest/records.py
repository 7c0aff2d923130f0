"""What the ingress writes to Kafka: the raw delivery record and, for a verified but empty/unparseable body, the
dead-letter record. Pure functions; the secret of a URL-secret source never reaches a record.

Every string of a record must be valid UTF-8 (Avro strings, Kafka keys). Header values arrive as whatever bytes the
sender put there (aiohttp hands them over decoded with ``surrogateescape``): a value that is not UTF-8 is stored with
U+FFFD in ``headers`` (readable) and exactly in ``header_bytes`` (raw_delivery v2)."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from typing import Any

from ingest.body import media_type
from ingest.sources import SourcePlan
from ingest.verify import Inbound, url_secret
from ingest.verify._util import wire
from schemas.dead_letter import dead_letter as schemas_dead_letter

_ids = random.Random(os.urandom(32))  # unique ids without a getrandom() syscall per delivery
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))  # forked workers must not share a sequence


def new_id() -> str:
    return f"{_ids.getrandbits(128):032x}"


JSON_TYPES = frozenset({"", "application/json", "text/plain", "text/json"})


def stored_query(plan: SourcePlan, query_string: str) -> str:
    return url_secret.strip(query_string, plan.url_secret_param) if plan.url_secret_param else query_string


def text(s: str) -> str:
    """``s`` if it is valid UTF-8 text, else its bytes decoded with U+FFFD for what is not."""
    if s.isascii():
        return s
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return wire(s).decode("utf-8", "replace")
    return s


def stored_headers(names: tuple[str, ...], headers: Mapping[str, str]) -> tuple[dict[str, str],
                                                                               dict[str, bytes] | None]:
    """(readable values, exact bytes of the values that are not UTF-8 — None when all are)."""
    readable: dict[str, str] = {}
    exact: dict[str, bytes] = {}
    for h in names:
        v = headers.get(h)
        if v is None:
            continue
        t = text(v)
        if t is not v:
            exact[h] = wire(v)
        readable[h] = t
    return readable, exact or None


def raw_delivery(plan: SourcePlan, req: Inbound, received_at_ms: int, user_key: str,
                 delivery_id: str | None = None) -> dict[str, Any]:
    readable, exact = stored_headers(plan.stored_headers, req.headers)
    return {
        "delivery_id": delivery_id or new_id(),
        "source": plan.name,
        "mmp": plan.settings.mmp,
        "app_id": plan.settings.app_id,
        "method": req.method,
        "path": f"/webhooks/{plan.name}",  # never the path-secret segment
        "query_string": text(stored_query(plan, req.query_string)),  # ASCII on the wire (the parser refuses more)
        "headers": readable,
        "header_bytes": exact,
        "body": req.body,
        "remote_addr": text(req.client),  # an X-Forwarded-For hop behind a trusted proxy: any bytes
        "received_at": received_at_ms,
        "user_key": text(user_key),
    }


def body_problem(method: str, content_type: str | None, body: bytes, query_string: str) -> tuple[str, str] | None:
    """(reason, detail) when a verified delivery carries nothing usable, else None. GET data lives in the query; a
    POST body must be a JSON object/array (JSON or plain-text types) or a UTF-8 form."""
    stripped = body.strip()
    if not stripped:
        if query_string:
            return None
        return ("empty_body", "the delivery has no body and no query parameters")
    mt = media_type(content_type)
    if mt == "application/x-www-form-urlencoded":
        try:
            stripped.decode("utf-8")
        except UnicodeDecodeError as exc:
            return ("invalid_form", f"form body is not UTF-8 ({exc.reason} at byte {exc.start})")
        return None
    if mt in JSON_TYPES or mt.endswith("+json"):
        try:
            value = json.loads(stripped)
        except (ValueError, RecursionError) as exc:
            return ("invalid_json", f"body is not JSON: {str(exc)[:160]}")
        if not isinstance(value, (dict, list)) or not value:
            return ("invalid_json", "body is JSON but not a non-empty object or array")
    return None


def dead_letter(raw: dict[str, Any], reason: str, detail: str, failed_at_ms: int, payload: bytes) -> dict[str, Any]:
    """``payload`` is the encoded raw_delivery record (replayable after a fix); the id is anchored on the delivery id,
    so the same delivery dead-lettered twice (a retried store) is one row in the warehouse."""
    return schemas_dead_letter(stage="ingress", reason=reason, detail=detail, delivery_id=raw["delivery_id"],
                               payload=payload, source=raw["source"], mmp=raw["mmp"], failed_at_ms=failed_at_ms)
