"""bench/sender.py: `attrib send`'s traffic generated before the clock, written as ready-made HTTP/1.1 requests —
against the real ingress (session broker), and its HTTP reading against a raw server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from attrib.settings import SourceSettings
from bench import e2e, sender
from ops.traffic import deliveries
from tests.ingest.conftest import SOURCES

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["lr", "gen", "sw", "st", "br", "adj", "af"]  # every signing scheme, timestamped ones (sw, st) included
SECRETS = {s for x in SOURCES for s in x.get("secrets", [])}


def _sources(names: list[str]) -> list[SourceSettings]:
    return [SourceSettings(**x) for x in SOURCES if x["name"] in names]


def _parse(request: bytes) -> tuple[str, str, dict[str, str], bytes]:
    """(method, target, headers by lower-case name, body) of one request as written on the wire."""
    head, _, body = request.partition(b"\r\n\r\n")
    line, *fields = head.decode().split("\r\n")
    method, target, version = line.split(" ")
    assert version == "HTTP/1.1"
    headers = {k.lower(): v for k, v in (f.split(": ", 1) for f in fields)}
    assert len(headers) == len(fields)  # no header twice (a sample's own User-Agent replaces ours)
    return method, target, headers, body


def _payload(source: str, query: str, body: bytes) -> tuple[str, tuple[tuple[str, str], ...], bytes]:
    """What the ingress stores of a delivery, comparable: the query without its secret (the ingress drops it)."""
    return source, tuple(kv for kv in parse_qsl(query, keep_blank_values=True) if kv[1] not in SECRETS), body


def test_generated_requests_are_the_plans_deliveries_signed_and_framed() -> None:
    srcs = _sources(NAMES)
    load = sender.generate(srcs, 40, "127.0.0.1:9", rate=500, duplicates=0.2, out_of_order=0.5, seed=7,
                           now=1_800_000_000)
    assert len(load.requests) == 40 * len(srcs)
    assert load.duplicates > 0 and load.out_of_order > 0
    per_source: dict[str, list[bytes]] = defaultdict(list)
    for i, r in enumerate(load.requests):
        method, target, headers, body = _parse(r)
        path = target.partition("?")[0]
        assert headers["host"] == "127.0.0.1:9"
        assert int(headers.get("content-length", "0")) == len(body)
        if method == "GET":
            assert not body and "content-length" not in headers
        name = path.removeprefix("/webhooks/")
        assert load.user[i] % len(srcs) == [s.name for s in srcs].index(name)  # a user of that source
        per_source[name].append(r)
    # each source's deliveries in its plan's order (sources interleaved round-robin), duplicates the same bytes
    for k, src in enumerate(srcs):
        plan = deliveries.plan(src, 40, 0.2, 0.5, deliveries.source_seed(7, src.name), now=1_800_000_000,
                               spacing_s=len(srcs) / 500)
        got = per_source[src.name]
        assert [_parse(r)[3] for r in got] == [p.out.body for p in plan]
        assert load.requests[k::len(srcs)] == got
        for i, p in enumerate(plan):
            if p.duplicate:
                assert got[i] is got[i - 1]
    # a user's later delivery waits for the one before: `waited` marks each but the user's last
    last: dict[int, int] = {}
    for i, u in enumerate(load.user):
        if u in last:
            assert load.waited[last[u]]
        last[u] = i
    assert not any(load.waited[i] for i in last.values())


async def test_the_sender_delivers_exactly_the_generated_set_to_the_ingress_in_each_users_order(
        start_ingress: Any) -> None:
    ing = await start_ingress()
    srcs = [ing.source(n) for n in NAMES]
    load = sender.generate(srcs, 30, f"127.0.0.1:{ing.settings.ingest.port}", duplicates=0.2, out_of_order=0.5,
                           seed=3)
    summary, figures = await sender.send(load, "127.0.0.1", ing.settings.ingest.port, rate=0, connections=32)
    n = len(load.requests)
    assert summary.statuses == Counter({"200": n})
    assert len(summary.latencies) == n and summary.duplicates == load.duplicates > 0
    assert figures["send_cpu_s"] > 0
    got = ing.consume(n)
    assert len(got) == n
    sent: Counter[tuple[str, tuple[tuple[str, str], ...], bytes]] = Counter()
    for r in load.requests:
        _, target, _, body = _parse(r)
        path, _, query = target.partition("?")
        sent[_payload(path.removeprefix("/webhooks/"), query, body)] += 1
    stored = Counter(_payload(rec["source"], rec["query_string"], rec["body"]) for _, rec in got)
    assert stored == sent  # every delivery once, every duplicate byte for byte, nothing else
    # 32 connections, yet each user's deliveries stored in the planned order: out-of-order users exactly as planned
    firsts: dict[str, dict[str, Any]] = {}
    for _, rec in sorted(got, key=lambda mr: (mr[0].partition(), mr[0].offset())):
        if rec["source"] in ("gen", "sw", "st"):  # generic: event_name, one user key per user
            firsts.setdefault(rec["user_key"], json.loads(rec["body"]))
    planned = sum(p.out_of_order for src in srcs if src.name in ("gen", "sw", "st")
                  for p in deliveries.plan(src, 30, 0.2, 0.5, deliveries.source_seed(3, src.name)))
    assert planned > 3 and sum(b["event_name"] != "install" for b in firsts.values()) == planned


async def test_a_paced_send_takes_at_least_its_schedule_and_reports_lateness(start_ingress: Any) -> None:
    """Open loop: delivery i is not written before start + i/rate (a lower bound, so no timing flake)."""
    ing = await start_ingress()
    srcs = [ing.source("gen"), ing.source("br")]
    load = sender.generate(srcs, 40, "127.0.0.1", rate=200)
    summary, figures = await sender.send(load, "127.0.0.1", ing.settings.ingest.port, rate=200, connections=4)
    assert summary.sent == 80 and summary.elapsed >= 79 / 200
    received = sorted(rec["received_at"] for _, rec in ing.consume(80))
    assert (received[-1] - received[0]).total_seconds() >= 79 / 200 - 0.002  # the ingress saw them spread (ms)
    assert 0 <= figures["late_ms"]["share"] <= 1 and figures["late_ms"]["p99"] >= 0


def test_signatures_that_would_expire_during_the_step_are_refused_before_sending() -> None:
    src = SourceSettings(name="st", mmp="generic", verify=["stripe"], secrets=["whsec_x"],
                         options={"tolerance_s": 20})
    load = sender.generate([src], 100, "127.0.0.1:9", rate=10)  # 10 s to send, 20 s accepted, 10 s kept in hand
    assert load.expires_s == 20
    with pytest.raises(ValueError, match="expire"):
        asyncio.run(sender.send(load, "127.0.0.1", 9, rate=10))  # port 9: nothing listens, nothing is tried
    quick = sender.generate([src], 10, "127.0.0.1:9", rate=100)  # 0.1 s to send: goes (and finds no server)
    summary, _ = asyncio.run(sender.send(quick, "127.0.0.1", 9, rate=100, connections=2))
    assert summary.statuses == Counter({"connect_error": 10})


async def test_answers_framed_by_length_chunks_or_close_and_broken_connections_are_counted() -> None:
    """The reader follows Content-Length, chunked bodies and Connection: close (reconnecting for the next request);
    a connection reset mid-answer counts as connect_error and a hung one as timeout, and the send goes on."""
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
               b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n",
               b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}",
               b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",  # then the server closes
               None,  # never answered
               b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"]
    connections = 0
    requests: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                requests.append(head)
                answer = answers[len(requests) - 1]
                if answer is None:
                    await asyncio.sleep(1)
                    return
                writer.write(answer)
                if b"short" in answer or b"close" in answer:
                    await writer.drain()
                    return
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reqs = [b"GET /x/%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(len(answers))]
    load = sender.Load(reqs, list(range(len(reqs))), [False] * len(reqs), 0, 0, 0.0, float("inf"))
    async with server:
        summary, _ = await sender.send(load, "127.0.0.1", port, connections=1, timeout=0.3)
    assert [h.split(b" ")[1] for h in requests] == [b"/x/%d" % i for i in range(len(answers))]  # in order, once
    assert summary.statuses == Counter({"200": 1, "202": 1, "503": 1, "connect_error": 1, "timeout": 1, "204": 1})
    assert connections == 4  # reconnected after the close, the reset and the timeout


async def test_the_cli_prints_attrib_sends_summary_and_its_own_cpu_for_bench_e2e(start_ingress: Any) -> None:
    ing = await start_ingress()
    env = {**os.environ, "ATTRIB_SOURCES": json.dumps([x for x in SOURCES if x["name"] in ("lr", "adj")]),
           "ATTRIB_INGEST__PORT": str(ing.settings.ingest.port), "ATTRIB_INGEST__HOST": "127.0.0.1",
           "ATTRIB_KAFKA__BOOTSTRAP_SERVERS": ing.settings.kafka.bootstrap_servers}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bench" / "sender.py"), "--count", "25", "--rate", "500", "--duplicates", "0.1",
        "--concurrency", "8", "--seed", "5", "--json", "--go-on-stdin", env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    assert json.loads(await proc.stdout.readline()) == {"generated": 50}  # then it waits for the go
    out, err = await proc.communicate(b"go\n")
    assert proc.returncode == 0, err.decode()[-2000:]
    d = json.loads(out.decode().strip().splitlines()[-1])
    assert d["sent"] == 50 and d["statuses"] == {"200": 50} and d["duplicates"] > 0
    assert {"elapsed_s", "rate_per_s", "out_of_order"} <= d.keys() and {"p50", "p99", "max"} == d["latency_ms"].keys()
    own = d["sender"]
    assert own["send_cpu_s"] > 0 and own["generate_cpu_s"] > 0 and own["connections"] == 8
    # bench/e2e.py's report reads it
    r = {"summary": d, "cpu": {"java": 1.0}, "sender_cpu": own["send_cpu_s"]}
    assert "bench/sender.py" in e2e._per_delivery(r) and "generating beforehand" in e2e._per_delivery(r)
    assert len(ing.consume(50)) == 50
