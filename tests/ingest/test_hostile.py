"""Nothing a verified sender sends is lost, whatever its bytes: arbitrary bodies (invalid UTF-8, JSON with lone
surrogate escapes in the user-key field), arbitrary header values (Latin-1 ``café`` in User-Agent, X-Forwarded-For,
svix-id — the signed message id) and arbitrary query bytes, correctly signed (Standard Webhooks over id + body), sent
as raw bytes to a real ingress on the session broker. Every answer is 200 (raw topic) or 400 with a delivery id
(dead-letter topic), never a 5xx; and every such delivery is found afterwards with its bytes exact."""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attrib.settings import Settings
from attrib.topics import ensure_topics
from ingest import records, server
from ingest.sources import compile_all
from ingest.verify import Inbound
from schemas import avro
from tests.ingest.conftest import SW_SECRET, consume
from tests.support import free_port

EXAMPLES = 300
SOURCES = [
    {"name": "svx", "mmp": "generic", "verify": ["standard_webhooks"], "secrets": [SW_SECRET],
     "options": {"standard_webhooks_prefix": "svix-"}},
    {"name": "svx-lr", "mmp": "linkrunner", "verify": ["standard_webhooks"], "secrets": [SW_SECRET],
     "options": {"standard_webhooks_prefix": "svix-"}},
]
KEY = base64.b64decode(SW_SECRET.removeprefix("whsec_"))


@dataclass
class Live:
    settings: Settings
    port: int


@pytest.fixture(scope="module")
def live(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One ingress for all examples, on its own event loop in a thread (hypothesis drives it synchronously)."""
    tag = hashlib.sha1(str(time.time()).encode()).hexdigest()[:8]
    s = Settings(var_dir=tmp_path_factory.mktemp("hostile"), kafka={"bootstrap_servers": kafka_bootstrap},
                 topics={"raw": f"h-{tag}.raw", "dead_letters": f"h-{tag}.dlq", "partitions": 4},
                 ingest={"host": "127.0.0.1", "port": free_port(), "trusted_proxies": ["127.0.0.1/32"]},
                 sources=SOURCES)
    ensure_topics(s)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = asyncio.run_coroutine_threadsafe(server.start(s, reuse_port=False), loop).result(60)
    try:
        yield Live(s, s.ingest.port)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


# -- what a hostile but verified sender sends --------------------------------------------------------------------
# header values: any byte HTTP allows in a field value (visible ASCII, space, tab, obs-text 0x80-0xff)
HEADER_BYTE = st.sampled_from([9, *range(0x20, 0x7F), *range(0x80, 0x100)])
header_value = st.one_of(
    st.lists(HEADER_BYTE, max_size=40).map(bytes),
    st.sampled_from([b"caf\xe9", b"Mozilla/5.0 (caf\xe9)", b"10.0.0.1, caf\xe9", b"\xed\xa0\x80", b"msg_\xff\xfe"]),
)
WEIRD = ["\ud800", "\udfff", "\udce9", "caf\xe9", "\x00", "山田", "\U0001f600"]
RAW_BAD = [b"\xe9", b"\xff", b"\xed\xa0\x80", b"\xc3", b"\xf4\x90\x80\x80"]


@st.composite
def json_body(draw: Any) -> bytes:
    """JSON whose user-key field holds lone surrogate escapes or invalid UTF-8 spliced in raw."""
    field = draw(st.sampled_from(["user_id", "customer_user_id", "gaid", "idfa", "event_type"]))
    value = draw(st.lists(st.sampled_from(WEIRD) | st.text(max_size=5), min_size=1, max_size=4).map("".join))
    doc = {"event_type": "install", field: value, "n": draw(st.integers())}
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data = data.replace(b"install", draw(st.sampled_from(RAW_BAD)), 1)
    return data


body_bytes = st.one_of(st.binary(max_size=300), json_body(), st.just(b""), st.just(b"  \r\n"))
query_bytes = st.binary(max_size=60)
CONTENT_TYPES = [b"application/json", b"text/plain", b"application/x-www-form-urlencoded",
                 b"application/json; charset=latin-1", b"text/plain; charset=utf-8"]


def wire_query(raw: bytes) -> bytes:
    """Any bytes as a request-target query: what the parser accepts goes raw (malformed %-escapes included), the
    rest percent-encoded — the HTTP grammar allows nothing else on the request line."""
    out = bytearray()
    for b in raw:
        out += bytes([b]) if 0x21 <= b <= 0x7E and b != 0x23 else b"%%%02X" % b
    return bytes(out)


def signed_request(source: str, body: bytes, query: bytes, content_type: bytes, msg_id: bytes, ua: bytes,
                   xff: bytes) -> bytes:
    ts = str(int(time.time())).encode()
    signed_id = field(msg_id)  # the id as the receiver will see it
    sig = base64.b64encode(hmac.new(KEY, signed_id + b"." + ts + b"." + body, hashlib.sha256).digest())
    target = f"/webhooks/{source}".encode() + (b"?" + query if query else b"")
    head = [b"POST " + target + b" HTTP/1.1", b"Host: hooks.example", b"Connection: close",
            b"Content-Type: " + content_type, b"Content-Length: " + str(len(body)).encode(),
            b"User-Agent: " + ua, b"X-Forwarded-For: " + xff,
            b"svix-id: " + msg_id, b"svix-timestamp: " + ts, b"svix-signature: v1," + sig]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def roundtrip(port: int, request: bytes) -> tuple[int, dict[str, Any]]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(payload) if payload else {}


def field(v: bytes) -> bytes:
    return v.strip(b" \t")  # HTTP drops a field value's surrounding whitespace before anyone sees it


def test_verified_deliveries_are_stored_or_dead_lettered_whatever_their_bytes(live: Live) -> None:
    sent: dict[str, tuple[str, dict[str, Any]]] = {}  # delivery id -> (topic kind, what must be stored)
    statuses: collections.Counter[int] = collections.Counter()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(source=st.sampled_from(["svx", "svx-lr"]), body=body_bytes, query=query_bytes,
           content_type=st.sampled_from(CONTENT_TYPES), msg_id=header_value.filter(lambda v: bool(field(v))),
           ua=header_value, xff=header_value)
    def one(source: str, body: bytes, query: bytes, content_type: bytes, msg_id: bytes, ua: bytes,
            xff: bytes) -> None:
        status, answer = roundtrip(live.port, signed_request(source, body, wire_query(query), content_type,
                                                             msg_id, ua, xff))
        statuses[status] += 1
        assert status < 500, (status, answer)
        assert "delivery_id" in answer, (status, answer)  # 200 stored, or 400 kept on the dead-letter topic
        assert status == 200 or (status == 400 and answer["error"] in ("invalid_json", "invalid_form",
                                                                        "empty_body")), (status, answer)
        sent[answer["delivery_id"]] = ("raw" if status == 200 else "dlq", {
            "source": source, "body": body, "query_string": wire_query(query).decode("ascii"),
            "headers": {"user-agent": field(ua), "x-forwarded-for": field(xff), "svix-id": field(msg_id),
                        "content-type": content_type}})

    one()
    raw_n = sum(1 for kind, _ in sent.values() if kind == "raw")
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for _, rec in consume(live.settings, live.settings.topics.raw, raw_n):
        found[rec["delivery_id"]] = ("raw", rec)
    for _, dl in consume(live.settings, live.settings.topics.dead_letters, len(sent) - raw_n):
        _, rec = avro.decode(dl["payload"], expect="raw_delivery")
        assert dl["delivery_id"] == rec["delivery_id"]
        found[rec["delivery_id"]] = ("dlq", rec)
    print(f"\nhostile deliveries: {len(sent)} sent, statuses {dict(statuses)}, {raw_n} raw, "
          f"{len(sent) - raw_n} dead-lettered, {len(found)} found")
    assert set(sent) <= set(found), f"{len(set(sent) - set(found))} acknowledged deliveries are in neither topic"
    for did, (kind, want) in sent.items():
        got_kind, rec = found[did]
        assert got_kind == kind and rec["source"] == want["source"]
        assert rec["body"] == want["body"] and rec["query_string"] == want["query_string"]
        exact = rec.get("header_bytes") or {}
        for name, value in want["headers"].items():  # every header byte kept: as text if UTF-8, else exactly
            assert exact.get(name, rec["headers"][name].encode()) == value, (name, value, rec)
        rec["user_key"].encode("utf-8")  # a valid key: Kafka key and Avro string


# -- the record builder over any header/address strings aiohttp can hand over --------------------------------------
@settings(max_examples=200, deadline=None)
@given(values=st.dictionaries(st.sampled_from(["user-agent", "x-forwarded-for", "svix-id", "x-request-id"]),
                              st.binary(max_size=30)),
       client=st.binary(max_size=20), key=st.text(max_size=10) | st.sampled_from(["idfa:\ud800", "fp:\udce9"]))
def test_raw_record_keeps_any_header_bytes(values: dict[str, bytes], client: bytes, key: str,
                                           make_plain_plan: Any) -> None:
    headers = {h: v.decode("utf-8", "surrogateescape") for h, v in values.items()}  # as aiohttp decodes them
    req = Inbound("POST", "/webhooks/svx", "", headers, b"{}", client.decode("utf-8", "surrogateescape"))
    rec = records.raw_delivery(make_plain_plan, req, 0, records.text(key))
    _, back = avro.decode(avro.encode("raw_delivery", rec), expect="raw_delivery")
    for h, v in values.items():
        assert (back["header_bytes"] or {}).get(h, back["headers"][h].encode()) == v
    assert back["remote_addr"] == client.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def make_plain_plan() -> Any:
    return compile_all(Settings(sources=SOURCES))["svx"]


# -- a bug in the ingress does not lose a verified delivery either ------------------------------------------------
async def test_a_delivery_the_ingress_fails_on_is_dead_lettered_whole(start_ingress, monkeypatch):
    ing = await start_ingress()

    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("simulated bug in the record builder")

    monkeypatch.setattr(records, "raw_delivery", broken)
    body = b'{"event_type": "install", "gaid": "6e2f9a10-3c4b-4d5e-8f70-a1b2c3d4e5f6"}'
    from ingest.verify import Outbound

    out = Outbound("POST", "/webhooks/gen", headers={"Content-Type": "application/json", "User-Agent": "agent/1"},
                   body=body)
    status, answer, _ = await ing.send(out, sign_as="gen")
    assert (status, answer["status"]) == (200, "dead_lettered"), answer
    (_, dl), = ing.consume(1, ing.settings.topics.dead_letters)
    assert (dl["reason"], dl["stage"], dl["source"], dl["delivery_id"]) == (
        "internal_error", "ingress", "gen", answer["delivery_id"])
    _, raw = avro.decode(dl["payload"], expect="raw_delivery")
    assert raw["body"] == body and raw["header_bytes"]["user-agent"] == b"agent/1"
    assert ing.consume(0, timeout_polls=2) == []  # not on the raw topic: the worker never saw a half-built record


async def test_the_largest_accepted_body_is_stored_and_a_larger_record_is_413_not_503(start_ingress):
    """A body at ingest.max_body_bytes (default 1 MB, Adjust's documented maximum) fits Kafka's record limit with its
    headers; when a raised max_body_bytes lets through more than Kafka takes, the answer is 413, never a 503 that
    every retry would get again."""
    from ingest.verify import Outbound

    def delivery(size: int) -> Outbound:
        prefix = b'{"event_type": "install", "gaid": "6e2f9a10-3c4b-4d5e-8f70-a1b2c3d4e5f6", "pad": "'
        body = prefix + b"x" * (size - len(prefix) - 2) + b'"}'
        return Outbound("POST", "/webhooks/gen", body=body, headers={
            "Content-Type": "application/json", "User-Agent": "u" * 8000, "X-Request-Id": "r" * 8000})

    ing = await start_ingress()
    limit = ing.settings.ingest.max_body_bytes
    out = delivery(limit)
    status, answer, _ = await ing.send(out, sign_as="gen")
    assert status == 200, answer
    (_, rec), = ing.consume(1)
    assert rec["body"] == out.body and len(rec["body"]) == limit

    big = await start_ingress(max_body_bytes=4 * limit)
    status, answer, _ = await big.send(delivery(2 * limit), sign_as="gen")
    assert (status, answer["error"]) == (413, "body_too_large"), answer
