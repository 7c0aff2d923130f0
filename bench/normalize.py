"""Normalizer throughput: the reference (the test oracle) against the production path, events/s per CPU-second, on
the MMP samples and on the worker bench's synthetic mix (decoded from Avro, as the worker gets them); then Avro costs
per record (fastavro against the compiled codecs).

Run: .venv/bin/python bench/normalize.py [--seconds N] [--rounds R]

The machine may be shared: rates are per CPU-second of this process, and reference and fast runs alternate in short
slices (``--rounds`` of each), so a neighbour's load weighs on both alike; the ratio is the median of the rounds.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import fastavro

from attrib.settings import SourceSettings
from schemas import avro
from schemas.canonical import TOUCH_FIELDS
from schemas.normalize import normalize
from schemas.normalize.reference import normalize as reference
from schemas.user_key import user_key

Delivery = tuple[SourceSettings, dict[str, Any]]


def deliveries() -> list[Delivery]:
    """The MMP samples (tests/schemas/samples), one delivery each."""
    out = []
    for p in sorted((ROOT / "tests" / "schemas" / "samples").glob("*.json")):
        s = json.loads(p.read_text())
        mmp = "branch" if s["mmp"] == "branch_legacy" else s["mmp"]
        body = b"" if s["body"] is None else json.dumps(s["body"], ensure_ascii=False).encode()
        raw = {"delivery_id": "d", "source": "b", "mmp": mmp, "app_id": None, "method": s["method"], "path": "/",
               "query_string": s.get("raw_query_string") or "", "body": body, "remote_addr": "",
               "headers": {"content-type": s["content_type"]} if s["content_type"] else {},
               "received_at": 1_730_000_000_000, "user_key": ""}
        out.append((SourceSettings(name="b", mmp=mmp), raw))
    return out


def synthetic(n: int = 300) -> list[Delivery]:
    """The worker bench's traffic (ops/traffic/synthetic.py: generic, AppsFlyer, Linkrunner), through the raw
    delivery's Avro round trip as the worker receives it."""
    from ops.traffic.synthetic import SOURCES, generate

    sources = {s["name"]: SourceSettings(**s) for s in SOURCES}
    raws = generate(users=max(1, n // 5), events_per_user=4, dup_rate=0.0, seed=1).raws[:n]
    return [(sources[r["source"]], avro.decode(avro.encode("raw_delivery", r))[1]) for r in raws]


def _rate(fn: Callable[[SourceSettings, dict[str, Any]], Any], items: list[Delivery], seconds: float) -> float:
    n, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        for s, r in items:
            fn(s, r)
        n += len(items)
    return n / (time.process_time() - start)


def compare(label: str, items: list[Delivery], seconds: float, rounds: int) -> None:
    """Reference and fast in alternating slices: events/s per CPU-s of each (median) and the median ratio."""
    ref, fast = [], []
    for _ in range(rounds):
        ref.append(_rate(reference, items, seconds / rounds))
        fast.append(_rate(normalize, items, seconds / rounds))
    ratio = statistics.median(f / r for f, r in zip(fast, ref, strict=True))
    print(f"{label:<30} reference {statistics.median(ref):>8,.0f}/s  fast {statistics.median(fast):>8,.0f}/s "
          f"per CPU-s  fast/reference {ratio:.2f}  ({len(items)} deliveries, {rounds} rounds)", flush=True)


def per_call(label: str, fn: Callable[[Any], Any], items: list[Any], seconds: float) -> None:
    n, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        for it in items:
            fn(it)
        n += len(items)
    print(f"  {label:<44} {1e6 * (time.process_time() - start) / n:6.2f} µs CPU per record", flush=True)


def _fastavro_writer(schema: Any) -> Callable[[dict[str, Any]], None]:
    return lambda rec: fastavro.schemaless_writer(io.BytesIO(), schema, rec)


def avro_costs(items: list[Delivery], seconds: float) -> None:
    """Per record: raw_delivery decode (the worker's input) and canonical/enriched encode (its outputs)."""
    raws = [avro.encode("raw_delivery", {**r, "received_at": 1_730_000_000_000}) for _, r in items]
    events = [e for s, r in items for e in normalize(s, r)]
    enriched = [{**e, "first_touch": t, "last_touch": t, "attribution_status": "attributed", "version": 1,
                 "emitted_at": e["received_at"]} for e in events for t in [{k: e[k] for k in TOUCH_FIELDS}]]
    print("Avro, per record:")
    for name, recs in (("canonical_event", events), ("enriched_event", enriched)):
        c = avro.codec(name)
        per_call(f"{name} encode, production", c.encode, recs, seconds)
        per_call(f"{name} encode, fastavro schemaless_writer", _fastavro_writer(c.schema), recs, seconds)
    raw_schema = avro.codec("raw_delivery").schema
    per_call("raw_delivery decode, production", avro.decode, raws, seconds)
    per_call("raw_delivery decode, fastavro schemaless_reader",
             lambda b: fastavro.schemaless_reader(io.BytesIO(b[10:]), raw_schema, None), raws, seconds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=6.0, help="CPU seconds per comparison")
    ap.add_argument("--rounds", type=int, default=6)
    a = ap.parse_args()
    samples, mix = deliveries(), synthetic()
    compare("normalize(), MMP samples", samples, a.seconds, a.rounds)
    compare("normalize(), worker mix", mix, a.seconds, a.rounds)
    per_call("user_key() (the ingress), MMP samples",
             lambda it: user_key(it[0].mmp, it[1]["body"], it[1]["query_string"],
                                 it[1]["headers"].get("content-type"), {}), samples, a.seconds / 4)
    avro_costs(mix, a.seconds / 8)


if __name__ == "__main__":
    main()
