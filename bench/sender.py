"""The benches' load sender: `attrib send`'s traffic, generated before the clock starts, written open-loop as
ready-made HTTP/1.1 request bytes over keep-alive connections — so the 2 cores it shares with the pipeline measure
the pipeline, not the instrument.

    .venv/bin/python bench/sender.py --count 3000 --rate 1500 [--concurrency 64] [--duplicates 0.05] [--json]

Settings (sources, ingest.host/port) come from the environment like any `attrib` command (bench/e2e.py passes its
pipeline's). The deliveries are the running tree's ops.traffic plan — same templates, users, event mix, duplicates
(byte for byte) and out-of-order share as `attrib send` — signed once at generation: the demo sources' schemes
(url_secret, token, hmac) sign no time, and the timestamped ones (stripe, standard_webhooks) accept a signature for
``tolerance_s`` (300 s by default), so a step shorter than that minus the generation stays valid; a longer one is
refused before anything is sent. Each delivery's event time is its planned send moment as seen at generation: the
deliveries leave the generation's duration later (a few seconds), as an MMP's webhooks do after the event.

Sending, with `attrib send`'s concurrency: delivery i is due at start + i/rate (sources interleaved round-robin);
each of --concurrency keep-alive connections takes the next delivery, waits until it is due, and — when that user's
previous delivery is still unanswered — until it is answered (an install never overtakes its purchase, a duplicate
follows its original); one request in flight per connection. A delivery written after its due time (every
connection busy) is counted in ``late_ms``. The summary is `attrib send --json`'s (statuses, ack latency from the
write to the last byte of the answer, rate over first due → last answer) plus ``sender``: CPU seconds of the
generation and of the timed send, separately. Plain asyncio streams on uvloop (a dependency: the ingress runs on
it); HTTPS is not supported (bench/e2e.py's pipeline is plain HTTP).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import itertools
import json
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from attrib.settings import Settings, SourceSettings
from ingest.verify import Outbound
from ops.traffic import deliveries, signing
from ops.traffic.send import Summary

TIMESTAMPED = ("stripe", "standard_webhooks")  # schemes whose signature carries the signing time
MARGIN_S = 10.0  # of a timestamped source's tolerance, kept for clock steps and a slow start
CONNECT_ERROR, TIMEOUT = "connect_error", "timeout"  # as `attrib send` (attrib.http_errors) names them
DEFAULT_HEADERS = {"Accept": "*/*", "Accept-Encoding": "gzip, deflate", "User-Agent": "attrib-bench-sender"}


@dataclass
class Load:
    """One step's deliveries, ready to write: ``requests[i]`` goes out at start + i/rate, after the answer to the
    previous delivery of user ``user[i]``; ``waited[i]``: a later delivery of that user waits for this one's."""

    requests: list[bytes]
    user: list[int]
    waited: list[bool]
    duplicates: int
    out_of_order: int
    signed_at: float  # wall-clock time the signatures carry
    expires_s: float  # seconds after ``signed_at`` a timestamped source stops accepting them (inf: none signed)
    generate_cpu_s: float = 0.0


def request_bytes(out: Outbound, host: str) -> bytes:
    """``out`` as an HTTP/1.1 request (keep-alive is HTTP/1.1's default), with the headers `attrib send`'s aiohttp
    client sends (a sample's own User-Agent or Accept wins, as there)."""
    qs = signing.query_string(out)
    own = {k.lower() for k in out.headers}
    head = [f"{out.method} {out.path}{'?' + qs if qs else ''} HTTP/1.1", f"Host: {host}"]
    head += [f"{k}: {v}" for k, v in DEFAULT_HEADERS.items() if k.lower() not in own]
    head += [f"{k}: {v}" for k, v in out.headers.items()]
    if out.body or out.method not in ("GET", "HEAD"):
        head.append(f"Content-Length: {len(out.body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + out.body


def _plan(src: SourceSettings, count: int, duplicates: float, out_of_order: float, seed: int | None, now: float,
          spacing_s: float) -> list[deliveries.Planned]:
    """The tree's plan for one source; an older tree's (60a387d) has no pacing nor per-source seeds."""
    params = inspect.signature(deliveries.plan).parameters
    source_seed = getattr(deliveries, "source_seed", None)
    seed_ = source_seed(seed, src.name) if source_seed else seed
    extra: dict[str, Any] = {"spacing_s": spacing_s} if "spacing_s" in params else {}
    return deliveries.plan(src, count, duplicates, out_of_order, seed_, now=now, **extra)


def generate(sources: list[SourceSettings], count: int, host: str, rate: float = 0.0, duplicates: float = 0.0,
             out_of_order: float = 0.0, seed: int | None = None, now: float | None = None) -> Load:
    """``count`` deliveries per source, signed and encoded, in `attrib send`'s order."""
    cpu0 = time.process_time()
    now = time.time() if now is None else now
    spacing = len(sources) / rate if rate > 0 else 0.0
    per_source: list[list[tuple[bytes, int]]] = []
    dups = ooo = 0
    expires = float("inf")
    for k, src in enumerate(sources):
        encoded: dict[int, bytes] = {}  # a duplicate is its original's Outbound: the same bytes, not a re-signing
        rows = []
        for p in _plan(src, count, duplicates, out_of_order, seed, now, spacing):
            key = id(p.out)
            if key not in encoded:
                encoded[key] = request_bytes(signing.sign(src, p.out, now), host)
            rows.append((encoded[key], p.user * len(sources) + k))  # a user of a source
            dups += p.duplicate
            ooo += p.out_of_order
        per_source.append(rows)
        if set(src.verify) & set(TIMESTAMPED):
            expires = min(expires, signing.options(src).tolerance_s)
    # interleave the sources round-robin, as `attrib send` does; each source keeps its own order
    ordered = [r for group in itertools.zip_longest(*per_source) for r in group if r is not None]
    users = [r[1] for r in ordered]
    seen: set[int] = set()
    waited = [False] * len(users)
    for i in range(len(users) - 1, -1, -1):
        waited[i] = users[i] in seen
        seen.add(users[i])
    return Load([r[0] for r in ordered], users, waited, dups, ooo, now, expires, time.process_time() - cpu0)


# -- sending -----------------------------------------------------------------------------------------------------------
class Http:
    """One keep-alive connection, one request in flight."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.since: float | None = None  # perf_counter of the write in flight (the watchdog's view)
        self.timed_out = False

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()
        self.reader = self.writer = None

    async def exchange(self, request: bytes) -> str:
        """Write ``request``, read the answer; its status as `attrib send` counts it."""
        if self.writer is None:
            await self.connect()
        assert self.reader is not None and self.writer is not None
        self.timed_out = False
        self.since = time.perf_counter()
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = head[9:12].decode("ascii")
        lower = head.lower()
        if b"\r\ntransfer-encoding: chunked" in lower:
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readuntil(b"\r\n")  # no trailers are sent to us
        elif (at := lower.find(b"\r\ncontent-length:")) >= 0:
            length = int(lower[at + 17:lower.index(b"\r\n", at + 2)])
            if length:
                await self.reader.readexactly(length)
        if b"\r\nconnection: close" in lower:
            self.close()
        self.since = None
        return status


class Pacer:
    """The shared state of one send: which delivery is next, and the answers later deliveries of a user wait for."""

    def __init__(self, load: Load, start: float, rate: float) -> None:
        self.load, self.start, self.rate = load, start, rate
        self.next = 0
        self.answered: dict[int, asyncio.Future[None]] = {}  # user -> its last delivery taken's answer
        self.late: list[float] = []


async def _connection(http: Http, pacer: Pacer, summary: Summary) -> None:
    loop = asyncio.get_running_loop()
    load, answered, latencies, statuses = pacer.load, pacer.answered, summary.latencies, summary.statuses
    n = len(load.requests)
    while (i := pacer.next) < n:
        pacer.next += 1
        # the user's order: chain on its previous delivery's answer, taken (in order) before this wait
        user = load.user[i]
        before = answered.pop(user, None)
        mine = loop.create_future() if load.waited[i] else None
        if mine is not None:
            answered[user] = mine
        delay = (pacer.start + i / pacer.rate if pacer.rate > 0 else pacer.start) - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif pacer.rate > 0 and (before is None or before.done()):  # due, and only a busy connection held it
            pacer.late.append(-delay)
        if before is not None:
            await before
        t0 = time.perf_counter()
        try:
            status = await http.exchange(load.requests[i])
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            status = TIMEOUT if http.timed_out else CONNECT_ERROR
            http.close()
        latencies.append(time.perf_counter() - t0)
        statuses[status] += 1
        if mine is not None:
            mine.set_result(None)


async def _watchdog(conns: list[Http], timeout: float) -> None:
    """Abort a connection whose request waited over ``timeout`` s (its read then fails: counted as a timeout)."""
    while True:
        await asyncio.sleep(min(1.0, timeout / 4))
        now = time.perf_counter()
        for c in conns:
            if c.since is not None and now - c.since > timeout and c.writer is not None:
                c.timed_out = True
                c.writer.transport.abort()


async def send(load: Load, host: str, port: int, rate: float = 0.0, connections: int = 64,
               timeout: float = 30.0) -> tuple[Summary, dict[str, Any]]:
    """Send ``load`` at ``rate``/s (0: as fast as the connections go) over ``connections``; the summary and the
    sender's own figures (CPU of the send, lateness)."""
    n = len(load.requests)
    duration = n / rate if rate > 0 else 0.0
    if time.time() + 1 + duration - load.signed_at > load.expires_s - MARGIN_S:
        raise ValueError(f"signatures made at generation would expire during the step ({duration:.0f} s to send, "
                         f"a timestamped source accepts {load.expires_s:g} s): shorten the step")
    conns = [Http(host, port) for _ in range(max(1, min(connections, n)))]
    # connected before the clock starts; one refused now is retried by its first request (counted connect_error)
    await asyncio.gather(*(c.connect() for c in conns), return_exceptions=True)
    summary = Summary(duplicates=load.duplicates, out_of_order=load.out_of_order)
    loop = asyncio.get_running_loop()
    cpu0, wall0 = time.process_time(), time.monotonic()
    pacer = Pacer(load, loop.time() + 0.01, rate)
    dog = asyncio.ensure_future(_watchdog(conns, timeout))
    try:
        await asyncio.gather(*(_connection(c, pacer, summary) for c in conns))
    finally:
        dog.cancel()
        for c in conns:
            c.close()
    summary.elapsed = loop.time() - pacer.start
    late = sorted(pacer.late)
    return summary, {"send_cpu_s": round(time.process_time() - cpu0, 3), "send_s": round(time.monotonic() - wall0, 3),
                     "late_ms": {"share": round(len(late) / n, 4) if n else 0.0,
                                 "p99": round(1000 * late[int(0.99 * (len(late) - 1))], 2) if late else 0.0}}


def run(s: Settings, names: list[str] | None, count: int, rate: float = 0.0, connections: int = 64,
        duplicates: float = 0.0, out_of_order: float = 0.0, seed: int | None = None,
        timeout: float = 30.0, go: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Generate, then send (once ``go(deliveries)`` returns, when given); `attrib send --json`'s summary plus
    ``sender`` (CPU per phase, peak memory)."""
    import uvloop

    sources = [s.source(n) for n in names] if names else list(s.sources)
    missing = [n for n, src in zip(names or [], sources, strict=False) if src is None]
    if missing or not sources:
        raise ValueError(f"unknown source(s) {missing}; configured: {', '.join(x.name for x in s.sources)}")
    if s.ingest.tls_cert:
        raise ValueError("the ingress serves HTTPS (ingest.tls_cert): this sender speaks plain HTTP only")
    host = "127.0.0.1" if s.ingest.host in ("0.0.0.0", "::", "") else s.ingest.host
    wall0 = time.monotonic()
    load = generate([x for x in sources if x is not None], count, f"{host}:{s.ingest.port}", rate, duplicates,
                    out_of_order, seed)
    generate_s = time.monotonic() - wall0
    if go is not None:
        go(len(load.requests))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        summary, figures = runner.run(send(load, host, s.ingest.port, rate, connections, timeout))
    return summary.as_dict() | {"sender": {
        "generate_cpu_s": round(load.generate_cpu_s, 3), "generate_s": round(generate_s, 3), **figures,
        "connections": connections, "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}}


def _go_on_stdin(n: int) -> None:
    print(json.dumps({"generated": n}), flush=True)
    sys.stdin.readline()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", action="append", help="source name (repeatable; default: every configured source)")
    ap.add_argument("--count", type=int, default=100, help="deliveries per source (default 100)")
    ap.add_argument("--rate", type=float, default=0.0, help="deliveries per second overall (default: unpaced)")
    ap.add_argument("--concurrency", type=int, default=64, help="keep-alive connections, one request in flight "
                    "on each (default 64, as bench/e2e.py runs `attrib send`)")
    ap.add_argument("--duplicates", type=float, default=0.0, help="share re-sent byte for byte, e.g. 0.05")
    ap.add_argument("--out-of-order", type=float, default=0.0, help="share of users whose event precedes the install")
    ap.add_argument("--seed", type=int, help="random seed (repeatable traffic)")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON (else readable)")
    ap.add_argument("--go-on-stdin", action="store_true",
                    help="once generated, print {\"generated\": n} and send when a line arrives on stdin (a bench "
                         "starts its clock then)")
    a = ap.parse_args(argv)
    from attrib import settings as settings_mod

    try:
        d = run(settings_mod.load(), a.source, a.count, a.rate, max(1, a.concurrency), a.duplicates, a.out_of_order,
                a.seed, a.timeout, _go_on_stdin if a.go_on_stdin else None)
    except ValueError as exc:
        print(f"bench/sender.py: {exc}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(d))
    else:
        sender, lat = d["sender"], d["latency_ms"]
        print(f"sent {d['sent']} in {d['elapsed_s']} s ({d['rate_per_s']}/s), statuses {d['statuses']}; "
              f"ack p50 {lat['p50']} ms p99 {lat['p99']} ms; {d['duplicates']} duplicates")
        print(f"sender CPU: generation {sender['generate_cpu_s']} s (before the clock), send {sender['send_cpu_s']} s "
              f"= {1000 * sender['send_cpu_s'] / max(1, d['sent']):.3f} ms per delivery; late {sender['late_ms']}")
    return 0 if all(k.startswith("2") for k in d["statuses"]) else 1


if __name__ == "__main__":
    sys.exit(main())
