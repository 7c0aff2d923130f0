"""The connection level, over raw sockets: the request-head deadline (slow headers, blank lines, silence, a kept-alive
connection's next request), a slow body is not cut by it, a client that hangs up mid-body is a 499 (not a 500),
and bad requests are logged as rate-limited warnings, not one ERROR traceback each."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from ingest import logfilter, metrics
from tests.ingest.conftest import LR_KEY

GUARD_S = 30  # client-side: far below keepalive_timeout_s (75 s), so only the head deadline can end these in time
BODY = json.dumps({"event_type": "install", "gaid": "6e2f9a10-3c4b-4d5e-8f70-a1b2c3d4e5f6"}).encode()
HEAD = (b"POST /webhooks/lr HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nlinkrunner-key: "
        + LR_KEY.encode() + b"\r\nContent-Length: " + str(len(BODY)).encode() + b"\r\n\r\n")


async def _open(ing):
    return await asyncio.open_connection("127.0.0.1", int(ing.url.rsplit(":", 1)[1]))


async def _drip(writer: asyncio.StreamWriter, data: bytes, pause: float) -> None:
    """Send ``data`` a byte at a time until the server closes the connection (or all is sent)."""
    for i in range(len(data)):
        if writer.is_closing():
            return
        try:
            writer.write(data[i:i + 1])
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(pause)


async def _answer_then_close(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes; the guard fails the test if it never does."""
    return await asyncio.wait_for(reader.read(), GUARD_S)


async def test_slow_headers_are_answered_408_and_closed(start_ingress):
    ing = await start_ingress(header_timeout_s=1.5)
    before = metrics.HEADER_TIMEOUTS._value.get()
    reader, writer = await _open(ing)
    drip = asyncio.create_task(_drip(writer, HEAD + BODY, 0.5))  # 2 bytes/s: a head would take ~90 s
    answer = await _answer_then_close(reader)
    drip.cancel()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ") and b'"request_timeout"' in answer
    assert metrics.HEADER_TIMEOUTS._value.get() == before + 1
    assert ing.consume(0, timeout_polls=2) == []  # nothing half-received was stored


async def test_blank_lines_only_and_silence_are_closed(start_ingress):
    ing = await start_ingress(header_timeout_s=1.0)
    reader, writer = await _open(ing)
    drip = asyncio.create_task(_drip(writer, b"\r\n" * 200, 0.1))
    assert (await _answer_then_close(reader)).startswith(b"HTTP/1.1 408 ")
    drip.cancel()
    writer.close()
    reader, writer = await _open(ing)  # connects and sends nothing at all
    assert (await _answer_then_close(reader)).startswith(b"HTTP/1.1 408 ")
    writer.close()


async def test_deadline_spares_slow_bodies_and_applies_to_the_next_request_on_a_kept_alive_connection(start_ingress):
    ing = await start_ingress(header_timeout_s=1.0, read_timeout_s=20)
    reader, writer = await _open(ing)
    writer.write(HEAD)  # the head at once, then the body slowly: longer than the head deadline, within read_timeout
    await writer.drain()
    await _drip(writer, BODY, 2.5 / len(BODY))
    status = await asyncio.wait_for(reader.readline(), GUARD_S)
    assert status.startswith(b"HTTP/1.1 200 "), status
    length = 0
    while (line := await asyncio.wait_for(reader.readline(), GUARD_S)) != b"\r\n":
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    drip = asyncio.create_task(_drip(writer, HEAD, 0.5))  # the next request on the same connection: slow head
    assert (await _answer_then_close(reader)).startswith(b"HTTP/1.1 408 ")
    drip.cancel()
    writer.close()
    assert len(ing.consume(1)) == 1


async def test_client_hanging_up_mid_body_is_499_not_500(start_ingress):
    ing = await start_ingress()
    c499, c500 = metrics.requests("lr", 499), metrics.requests("lr", 500)
    before = (c499._value.get(), c500._value.get())
    for _ in range(3):
        _, writer = await _open(ing)
        writer.write(HEAD + BODY[:10])
        await writer.drain()
        await asyncio.sleep(0.2)  # let the handler start reading the body
        writer.close()
    for _ in range(200):  # the handlers notice the closed connections asynchronously
        if c499._value.get() >= before[0] + 3:
            break
        await asyncio.sleep(0.05)
    assert (c499._value.get(), c500._value.get()) == (before[0] + 3, before[1])


async def test_bad_requests_are_rate_limited_warnings_without_traceback(start_ingress, caplog):
    ing = await start_ingress()
    caplog.set_level(logging.DEBUG)
    for _ in range(40):  # a control byte in a header value: aiohttp's parser refuses it (400) and logs an error
        reader, writer = await _open(ing)
        writer.write(b"POST /webhooks/lr HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        assert b" 400 " in (await _answer_then_close(reader)).split(b"\r\n", 1)[0]
        writer.close()
    server_records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert server_records, "aiohttp logged nothing: the test no longer exercises its bad-request log"
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in server_records)
    assert len(server_records) < 40  # a burst, then about one a second: not one line per request
    assert all(r.__dict__["fields"]["reason"] == "BadHttpMessage" for r in server_records)


def test_token_bucket_per_reason():
    now = [0.0]
    bucket = logfilter.TokenBucket(rate=1.0, burst=3.0, clock=lambda: now[0])

    def rec(reason: str) -> logging.LogRecord:
        r = logging.LogRecord("attrib.ingest", logging.WARNING, __file__, 1, "delivery rejected", None, None)
        r.fields = {"source": "lr", "reason": reason}
        return r

    assert [bucket.filter(rec("bad_token")) for _ in range(10)] == [True] * 3 + [False] * 7
    assert bucket.filter(rec("invalid_json"))  # another reason has its own bucket
    now[0] += 2.0
    assert [bucket.filter(rec("bad_token")) for _ in range(3)] == [True, True, False]
    assert bucket.dropped == 8


def test_parser_errors_lose_traceback_and_become_warnings():
    from aiohttp.http_exceptions import BadHttpMessage

    try:
        raise BadHttpMessage("Invalid header value char:\n\n  b'X: \\x01'")
    except BadHttpMessage as exc:
        r = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s",
                              ("127.0.0.1",), (type(exc), exc, exc.__traceback__))
    assert logfilter.TokenBucket().filter(r)
    fields = r.__dict__["fields"]  # set by the filter; LogRecord declares no such attribute
    assert (r.levelname, r.exc_info, fields["reason"]) == ("WARNING", None, "BadHttpMessage")
    assert fields["detail"] == "Invalid header value char:"


@pytest.fixture(autouse=True)
def _fresh_log_filters():
    """Each test starts with full buckets (the filter lives on process-wide loggers)."""
    for name in logfilter.LOGGERS:
        lg = logging.getLogger(name)
        for f in [f for f in lg.filters if isinstance(f, logfilter.TokenBucket)]:
            lg.removeFilter(f)
    yield
