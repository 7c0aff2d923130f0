"""Detection quality of the spike/drop detector on generated traffic (run on demand: `python bench/alerts.py`).

Traffic: one app, four sources (50, 20, 8 and 2 installs per 5-min bucket at the daily mean), Poisson with a daily
cycle (x0.5 .. x1.5) and weekends at 80 %. The detector learns three clean weeks (the weekly/daily seasonal slots fill
up), the state is snapshotted, and every scenario replicate runs two days from that snapshot with one injected
incident at a random time on the second day. Reported per scenario: recall (incident alerted in the right direction
and scope, starting inside the incident or — window test — up to window_buckets after it), precision (alerts that match an incident / all alerts), detection delay (minutes of data from incident
start to the firing bucket's end; production adds the evaluation delay, `lateness_s`). False alarms per simulated
week come from clean weeks after the warm-up, also with overdispersed (gamma-Poisson, k=30) traffic, and with the
EWMA-only baseline (no history) for comparison.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.detector import SeriesKey
from alerts.memory import MemoryDetector
from attrib.settings import AlertSettings

B = 300_000
DAY = 288
WEEK = 7 * DAY
DEBUG = bool(os.environ.get("BENCH_DEBUG"))
RATES = {"big": 50.0, "mid": 20.0, "small": 8.0, "tiny": 2.0}


def rate(src: str, b: int) -> float:
    daily = 1 + 0.5 * math.sin(2 * math.pi * (b % DAY) / DAY - math.pi / 2)
    weekend = 0.8 if (b // DAY) % 7 in (5, 6) else 1.0
    return RATES[src] * daily * weekend


@dataclass(frozen=True)
class Scenario:
    name: str
    sources: tuple[str, ...]  # affected sources (all = platform incident)
    factor: float
    buckets: int

    @property
    def direction(self) -> str:
        return "spike" if self.factor > 1 else "drop"


SCENARIOS = [
    Scenario("spike x1.5 big 1h", ("big",), 1.5, 12),
    Scenario("spike x2 mid 30m", ("mid",), 2.0, 6),
    Scenario("spike x3 mid 15m", ("mid",), 3.0, 3),
    Scenario("spike x3 small 15m", ("small",), 3.0, 3),
    Scenario("spike x5 small 30m", ("small",), 5.0, 6),
    Scenario("spike x10 tiny 30m", ("tiny",), 10.0, 6),
    Scenario("drop -30% big 1h", ("big",), 0.7, 12),
    Scenario("drop -50% big 1h", ("big",), 0.5, 12),
    Scenario("drop -80% mid 1h", ("mid",), 0.2, 12),
    Scenario("drop -100% mid 30m", ("mid",), 0.0, 6),
    Scenario("drop -100% small 2h", ("small",), 0.0, 24),
    Scenario("drop -100% tiny 4h", ("tiny",), 0.0, 48),
    Scenario("outage all sources 30m", tuple(RATES), 0.0, 6),
]


def counts(rng: np.random.Generator, b: int, k: float | None, shape: dict[str, float]) -> dict[SeriesKey, int]:
    out = {}
    for s in RATES:
        lam = rate(s, b) * shape.get(s, 1.0)
        if k is not None and lam > 0:
            lam = rng.gamma(k, lam / k)
        out[SeriesKey("app", s, "install")] = int(rng.poisson(lam))
    return out


def warm(settings: AlertSettings, weeks: int, seed: int, k: float | None = None) -> MemoryDetector:
    det = MemoryDetector(settings)
    rng = np.random.default_rng(seed)
    for b in range(weeks * WEEK):
        det.step(b * B, counts(rng, b, k, {}))
    return det


def false_alarms(det: MemoryDetector, start: int, weeks: int, seed: int, k: float | None) -> tuple[int, list[str]]:
    det = copy.deepcopy(det)
    rng = np.random.default_rng(seed)
    fired: list[str] = []
    for b in range(start, start + weeks * WEEK):
        fired += [f"{a.record['direction']} {a.key}" for a in det.step(b * B, counts(rng, b, k, {}))
                  if a.record["state"] == "firing" and '"repeat": true' not in a.record["detail"]]
    return len(fired), fired


def run_scenario(det0: MemoryDetector, start: int, sc: Scenario, reps: int, seed: int,
                 settings: AlertSettings) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    hits, delays, good, bad = 0, [], 0, 0
    for _ in range(reps):
        det = copy.deepcopy(det0)
        onset = start + DAY + int(rng.integers(0, DAY - sc.buckets))
        platform = len(sc.sources) == len(RATES)
        first = None
        for b in range(start, start + 2 * DAY):
            inside = onset <= b < onset + sc.buckets
            shape = {s: sc.factor for s in sc.sources} if inside else {}
            for a in det.step(b * B, counts(rng, b, None, shape)):
                r = a.record
                if r["state"] != "firing" or '"repeat": true' in r["detail"]:
                    continue
                late = onset + sc.buckets + settings.thresholds.window_buckets  # a window test may confirm late
                match = (r["direction"] == sc.direction and onset * B <= r["bucket_start"] <= late * B
                         and (r["scope"] == "platform" if platform else r["media_source"] in sc.sources))
                if match:
                    good += 1
                    first = first if first is not None else (r["bucket_end"] - onset * B) / 60_000
                else:
                    bad += 1
                    if DEBUG:
                        print(f"  unmatched in {sc.name}: {r['direction']} {a.key} at {b - onset:+d} buckets "
                              f"obs={r['observed']} exp={r['expected']} {r['detail']}")
        if first is not None:
            hits += 1
            delays.append(first)
    return {"recall": hits / reps, "precision": good / (good + bad) if good + bad else float("nan"),
            "delay_med": statistics.median(delays) if delays else float("nan"),
            "delay_max": max(delays) if delays else float("nan"), "false": bad}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--weeks", type=int, default=4, help="clean weeks for the false-alarm rate")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a threshold, e.g. --set p_value=1e-3 (repeatable)")
    p.add_argument("--no-ewma", action="store_true", help="skip the EWMA-only comparison")
    args = p.parse_args()
    t0 = time.time()
    over = {k: float(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    settings = AlertSettings(thresholds=over)
    warm_weeks = 3
    det = warm(settings, warm_weeks, args.seed)
    start = warm_weeks * WEEK
    print(f"warm-up {warm_weeks} weeks: {time.time() - t0:.1f}s; defaults: {settings.thresholds.model_dump()}")
    print(f"\n{'scenario':<26}{'recall':>8}{'precision':>11}{'delay med':>11}{'delay max':>11}  (minutes of data)")
    for i, sc in enumerate(SCENARIOS):
        r = run_scenario(det, start, sc, args.reps, args.seed * 1000 + i, settings)
        print(f"{sc.name:<26}{r['recall']:>8.2f}{r['precision']:>11.2f}{r['delay_med']:>11.0f}{r['delay_max']:>11.0f}")
    print(f"\nfalse alarms over {args.weeks} clean simulated weeks (per week):")
    n, fired = false_alarms(det, start, args.weeks, args.seed + 7, None)
    print(f"  seasonal baseline, Poisson traffic          {n / args.weeks:6.2f}  {sorted(set(fired))[:5]}")
    det_k = warm(settings, warm_weeks, args.seed, k=30.0)
    n, fired = false_alarms(det_k, start, args.weeks, args.seed + 7, 30.0)
    print(f"  seasonal baseline, overdispersed (k=30)     {n / args.weeks:6.2f}  {sorted(set(fired))[:5]}")
    if args.no_ewma:
        return 0
    ewma = AlertSettings(thresholds={**over, "min_seasons": 10_000})
    det_e = warm(ewma, 1, args.seed)
    n, fired = false_alarms(det_e, WEEK, args.weeks, args.seed + 7, None)
    print(f"  EWMA-only baseline, Poisson traffic         {n / args.weeks:6.2f}  {sorted(set(fired))[:5]}")
    print("\nEWMA-only baseline (no history), same scenarios:")
    for i, sc in enumerate(SCENARIOS):
        r = run_scenario(det_e, WEEK, sc, args.reps, args.seed * 1000 + i, ewma)
        print(f"{sc.name:<26}{r['recall']:>8.2f}{r['precision']:>11.2f}{r['delay_med']:>11.0f}{r['delay_max']:>11.0f}")
    print(f"\ntotal {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
