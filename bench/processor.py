"""Per-delivery CPU of the worker's own code, without Kafka or Faust (run on demand, not in CI):
`python bench/processor.py [--users 6000] [--rounds 3]`.

Feeds ops/traffic/synthetic.py traffic (Avro raw deliveries, 30% duplicates, 10% out of order, three MMPs) through
`streams.processor.Processor` with a dict as the table and a no-op producer, and prints CPU µs (process time) per
delivery for the whole handle() plus each stage measured alone over the same deliveries: Avro decode (fastavro, and
the worker's own reader of raw deliveries), normalize, state load+dump, enriched-event encode.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attrib.settings import Settings
from ops.traffic.synthetic import SOURCES, generate
from schemas import avro
from schemas.normalize import normalize
from streams import codec
from streams.processor import Processor


def ints(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: (int(v.timestamp() * 1000) if isinstance(v, datetime) else ints(v) if isinstance(v, dict) else v)
            for k, v in rec.items()}


def per(label: str, n: int, seconds: float) -> None:
    print(f"{label:<34} {seconds / n * 1e6:>8.1f} µs/delivery")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=6000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    s = Settings(var_dir=Path("/tmp"), sources=SOURCES)
    traffic = generate(a.users, now_ms=1_780_000_000_000)
    values = [avro.encode("raw_delivery", r) for r in traffic.raws]
    n = len(values)
    print(f"{n} deliveries ({traffic.duplicates} duplicates, {traffic.out_of_order_users} out-of-order users)")
    best: dict[str, float] = {}

    def keep(label: str, el: float) -> None:
        best[label] = min(best.get(label, el), el)

    for _ in range(a.rounds):
        outs: list[bytes] = []
        table: dict[str, bytes] = {}

        def send(topic: str, key: bytes | None, value: bytes, outs: list[bytes] = outs) -> None:
            outs.append(value)

        proc = Processor(s, table, send)
        t0 = time.process_time()
        for i, v in enumerate(values):
            proc.handle(None, v, i % 4, i)
        keep("handle() total", time.process_time() - t0)

        t0 = time.process_time()
        raws = [avro.decode(v, expect="raw_delivery")[1] for v in values]
        keep("  avro decode raw (fastavro)", time.process_time() - t0)
        read = codec.raw_decoder(avro.decode)
        t0 = time.process_time()
        for v in values:
            read(v)
        keep("  raw read (the worker's reader)", time.process_time() - t0)
        srcs = {src.name: src for src in s.sources}
        t0 = time.process_time()
        for r in raws:
            normalize(srcs[r["source"]], {**r, "raw_ref": {"topic": "t", "partition": 0, "offset": 1}})
        keep("  normalize", time.process_time() - t0)
        decoded = [ints(avro.decode(v)[1]) for v in outs]  # as the worker hands them over: times as int ms
        t0 = time.process_time()
        for d in decoded:
            avro.encode("enriched_event", d)
        keep("  encode enriched (per delivery)", time.process_time() - t0)
        states = list(table.values())
        states = (states * (n // len(states) + 1))[:n]  # one load+dump per delivery (duplicates skip the dump)
        t0 = time.process_time()
        for b in states:
            codec.dump_state(codec.load_state(b))
        keep("  state load+dump (per delivery)", time.process_time() - t0)
    for label, el in best.items():
        per(label, n, el)
    print(f"enriched out: {len(outs)}; users: {len(table)}")


if __name__ == "__main__":
    main()
