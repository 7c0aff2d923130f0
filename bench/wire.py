"""Wire-format cost per record (on demand, not in CI): what the serde adds over calling schemas.avro directly.

    .venv/bin/python bench/wire.py [--seconds 2] [--rounds 5]

Rows (best of --rounds, interleaved so machine noise hits all alike):
- ``avro.encode`` / ``avro.decode``: the direct calls the producers and consumers made before the serde;
- ``serde ... (default)``: what they call now without a registry;
- ``serde ... (confluent)``: with a registry configured (a local in-process fake registry; cached after the first call);
- ``sink _fill``: the sink's batching loop (:meth:`sinks.service.Sink._fill`) over single-object (and, when this tree
  has the serde, Confluent-framed) enriched events — run this script from an older tree's copy to compare.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attrib.settings import Settings
from schemas import avro
from tests.sinks.fixtures import traffic

try:
    from schemas import wire
except ImportError:  # an older tree
    wire = None  # type: ignore[assignment]


class _Msg:
    """Just what Sink._fill reads from a confluent_kafka Message."""

    __slots__ = ("_o", "_v")

    def __init__(self, value: bytes, offset: int) -> None:
        self._v, self._o = value, offset

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._v

    def topic(self) -> str:
        return "bench.events"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._o


def _per_s(fn: Callable[[Any], Any], items: list[Any], seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for it in items:
            fn(it)
        n += len(items)
    return n / (time.perf_counter() - start)


def _fill_rate(settings: Settings, values: list[bytes], seconds: float) -> float:
    from sinks.service import Batch, Sink

    sink = Sink(settings, client_factory=lambda: None)  # type: ignore[arg-type,return-value]
    msgs = [_Msg(v, i) for i, v in enumerate(values)]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sink._carry = list(msgs)
        sink._fill(None, Batch())  # type: ignore[arg-type]
        n += len(msgs)
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    recs = traffic(users=200).records
    single = [avro.encode("enriched_event", r) for r in recs]
    cases: dict[str, Callable[[], float]] = {
        "avro.encode (before)": lambda: _per_s(lambda r: avro.encode("enriched_event", r), recs, a.seconds),
        "avro.decode (before)": lambda: _per_s(lambda b: avro.decode(b, expect="enriched_event"), single, a.seconds),
        "sink _fill single-object": lambda: _fill_rate(Settings(), single * 20, a.seconds),
    }
    srv = None
    if wire is not None and hasattr(wire.AutoSerde, "encoder"):
        from tests.schemas.test_wire import FakeRegistry

        srv = FakeRegistry()
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        reg = Settings(kafka={"schema_registry_url": srv.url})
        plain, conf = wire.serde(Settings()), wire.serde(reg)
        enc_plain, enc_conf = plain.encoder("enriched_event", "t"), conf.encoder("enriched_event", "t")
        framed = [enc_conf(r) for r in recs]
        cases.update({
            "serde encoder (default)": lambda: _per_s(enc_plain, recs, a.seconds),
            "serde decode (default)": lambda: _per_s(lambda b: plain.decode(b, expect="enriched_event"), single,
                                                     a.seconds),
            "serde encoder (confluent)": lambda: _per_s(enc_conf, recs, a.seconds),
            "serde decode (confluent)": lambda: _per_s(lambda b: conf.decode(b, expect="enriched_event"), framed,
                                                       a.seconds),
            "sink _fill confluent-framed": lambda: _fill_rate(reg, framed * 20, a.seconds),
        })
    best: dict[str, float] = {}
    for _ in range(a.rounds):
        for name, run in cases.items():
            best[name] = max(best.get(name, 0.0), run())
    print(f"{len(recs)} enriched events; best of {a.rounds} rounds of {a.seconds:g} s")
    for name, r in best.items():
        print(f"{name:<30} {r:>12,.0f} records/s  {1e6 / r:8.2f} µs/record")
    if srv is not None:
        srv.shutdown()


if __name__ == "__main__":
    main()
