"""``attrib send``: send realistic, correctly signed deliveries for configured sources to a running ingress, at a rate,
with duplicates and out-of-order installs, and print a summary of statuses and ack latencies."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from attrib import http_errors
from attrib.settings import Settings

HELP = "send realistic signed deliveries for configured sources to the ingress (traffic generator)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", action="append", help="source name (repeatable; default: every configured source)")
    p.add_argument("--url", help="ingress base URL (default http://<ingest.host>:<ingest.port>)")
    p.add_argument("--count", type=int, default=100, help="deliveries per source (default 100)")
    p.add_argument("--rate", type=float, default=0.0,
                   help="deliveries per second overall (default: as fast as allowed)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at once (default 8)")
    p.add_argument("--duplicates", type=float, default=0.0, help="share re-sent byte for byte, e.g. 0.05")
    p.add_argument("--out-of-order", type=float, default=0.0, help="share of users whose event precedes the install")
    p.add_argument("--seed", type=int, help="random seed (repeatable traffic)")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


@dataclass
class Summary:
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    duplicates: int = 0
    out_of_order: int = 0
    elapsed: float = 0.0

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))]

    def as_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "statuses": dict(sorted(self.statuses.items())), "duplicates": self.duplicates,
                "out_of_order": self.out_of_order, "elapsed_s": round(self.elapsed, 3),
                "rate_per_s": round(self.sent / self.elapsed, 1) if self.elapsed else 0.0,
                "latency_ms": {"p50": round(self.percentile(0.5) * 1000, 2),
                               "p99": round(self.percentile(0.99) * 1000, 2),
                               "max": round(max(self.latencies, default=0) * 1000, 2)}}


class Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self._last = total, enabled and sys.stderr.isatty(), 0.0

    def update(self, s: Summary, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.1):
            return
        self._last = now
        done = s.sent
        width = 30
        filled = int(width * done / self.total) if self.total else width
        counts = " ".join(f"{k}:{v}" for k, v in sorted(s.statuses.items()))
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} {counts}   ")
        if force:
            sys.stderr.write("\n")
        sys.stderr.flush()


async def send_all(base_url: str, sources: list[Any], count: int, rate: float = 0.0, concurrency: int = 8,
                   duplicates: float = 0.0, out_of_order: float = 0.0, seed: int | None = None,
                   timeout: float = 30.0, progress: bool = False) -> Summary:
    import aiohttp
    import yarl

    from ops.traffic import deliveries, signing

    spacing = len(sources) / rate if rate > 0 else 0.0  # a source's deliveries are this far apart when paced
    per_source = [[(src, p) for p in deliveries.plan(src, count, duplicates, out_of_order,
                                                  deliveries.source_seed(seed, src.name), spacing_s=spacing)]
                  for src in sources]
    # interleave the sources round-robin, as real traffic would be; each source keeps its own order
    planned = [sp for group in itertools.zip_longest(*per_source) for sp in group if sp is not None]
    # one user's deliveries go out one after another (each once the previous was answered): with requests in flight
    # concurrently an install could otherwise overtake the purchase planned before it, and out-of-order would not be
    done = [asyncio.Event() for _ in planned]
    prev: list[int | None] = []
    last: dict[tuple[str, int], int] = {}
    for i, (src, p) in enumerate(planned):
        prev.append(last.get((src.name, p.user)))
        last[(src.name, p.user)] = i
    summary = Summary(duplicates=sum(p.duplicate for _, p in planned),
                      out_of_order=sum(p.out_of_order for _, p in planned))
    bar = Progress(len(planned), progress)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(planned)):
        queue.put_nowait(i)
    started = time.monotonic()
    signed: dict[int, Any] = {}

    async def worker(session: aiohttp.ClientSession) -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if rate > 0:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            src, p = planned[i]
            before = prev[i]
            if before is not None:
                await done[before].wait()
            key = id(p.out)
            if key not in signed:  # a duplicate reuses the signed bytes of its original: a byte-identical retry
                signing.sign(src, p.out, time.time())
                signed[key] = p.out
            out = signed[key]
            url = yarl.URL(signing.url(base_url, out), encoded=True)
            t0 = time.perf_counter()
            try:
                async with session.request(out.method, url, data=out.body or None, headers=out.headers,
                                           skip_auto_headers=("Content-Type",)) as r:
                    await r.read()
                    status = str(r.status)
            except (TimeoutError, aiohttp.ClientError) as exc:
                status = http_errors.mapped(exc).reason  # timeout, connect_error
            summary.latencies.append(time.perf_counter() - t0)
            summary.statuses[status] += 1
            done[i].set()
            bar.update(summary)

    conn = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        await asyncio.gather(*(worker(session) for _ in range(max(1, concurrency))))
    summary.elapsed = time.monotonic() - started
    bar.update(summary, force=True)
    return summary


def main(args: argparse.Namespace, s: Settings) -> int:
    names = args.source or [x.name for x in s.sources]
    if not names:
        print("attrib send: no sources configured (see the README's Ingress section)", file=sys.stderr)
        return 2
    sources = []
    for n in names:
        src = s.source(n)
        if src is None:
            print(f"attrib send: unknown source {n!r}; configured: {', '.join(x.name for x in s.sources)}",
                  file=sys.stderr)
            return 2
        sources.append(src)
    host = "127.0.0.1" if s.ingest.host in ("0.0.0.0", "::", "") else s.ingest.host
    scheme = "https" if s.ingest.tls_cert else "http"
    url = args.url or f"{scheme}://{host}:{s.ingest.port}"
    try:
        summary = asyncio.run(send_all(url, sources, args.count, args.rate, args.concurrency, args.duplicates,
                                       args.out_of_order, args.seed, args.timeout, not args.no_progress))
    except ValueError as exc:
        print(f"attrib send: {exc}", file=sys.stderr)
        return 2
    d = summary.as_dict()
    if args.json:
        print(json.dumps(d))
    else:
        statuses = ", ".join(f"{k}: {v}" for k, v in d["statuses"].items())
        print(f"sent {d['sent']} deliveries to {url} in {d['elapsed_s']} s ({d['rate_per_s']}/s); "
              f"{d['duplicates']} duplicates, {d['out_of_order']} users' later event before their install")
        print(f"statuses  {statuses}")
        lat = d["latency_ms"]
        print(f"latency   p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms")
    ok = all(k.startswith("2") for k in d["statuses"])
    return 0 if ok else 1
