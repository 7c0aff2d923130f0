"""Detection quality of the spike/drop detector on honest generated traffic (run on demand: `python bench/alerts.py`).

The generator does not use the detector's model. Each series (its own app, one media source) gets its own volume
(5-300 events per 5-min bucket at the mean, log-uniform), its own negative-binomial dispersion k drawn from 3-30,
daily and weekly seasonality of its own amplitude and phase, growth (-20 % .. +40 % a month), heavy-tailed bursts that
are NOT incidents (a few a week, 1-2 buckets, size 1 + Pareto(1.5)/2, capped x20), and missing buckets (about one a
day reads 0). The detector learns ``--warm`` weeks, the state is snapshotted, then every scenario runs ``--weeks``
weeks from that snapshot with the same traffic plus labelled incidents of one kind (none for ``normal``):
stop (0 for 2 h), -80 % for 1 h, x3 for 15 min, x2 for 2 h, slow -50 % over a day.

Reported per scenario: false alerts per series-week (firing alerts outside every incident window), recall (an alert
in the incident's direction opened inside its window), time to detect (minutes of data from onset to the end of the
firing bucket; production adds ``lateness_s``), the share caught within 2 buckets, and a window score: per incident
1 - 0.5 x delay / window length if caught, -1 if missed, minus 0.1 per false alert, divided by the incidents (1 =
every incident at onset and nothing else).
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.config import Config, Thresholds
from alerts.detector import SeriesKey
from alerts.memory import MemoryDetector
from alerts.tails import cdf, sf

B = 300_000
DAY = 288
WEEK = 7 * DAY


@dataclass(frozen=True)
class Series:
    app: str
    mean: float
    k: float
    amp_day: float
    phase: float
    weekend: float
    growth: float  # per week, multiplicative
    burst_rate: float  # bursts per bucket


def make_series(n: int, rng: np.random.Generator) -> list[Series]:
    return [Series(f"app{i}", float(math.exp(rng.uniform(math.log(5), math.log(300)))), float(rng.uniform(3, 30)),
                   float(rng.uniform(0.2, 0.7)), float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0.6, 1.1)),
                   float((1 + rng.uniform(-0.2, 0.4)) ** (1 / 4.3)), float(rng.uniform(1, 5) / WEEK))
            for i in range(n)]


def mean_at(s: Series, b: int) -> float:
    daily = 1 + s.amp_day * math.sin(2 * math.pi * (b % DAY) / DAY + s.phase)
    weekend = s.weekend if (b // DAY) % 7 in (5, 6) else 1.0
    return s.mean * daily * weekend * s.growth ** (b / WEEK)


@dataclass(frozen=True)
class Kind:
    name: str
    direction: str
    buckets: int

    def factor(self, i: int) -> float:  # i = buckets since onset
        return {"stop": 0.0, "drop -80% 1h": 0.2, "spike x3 15m": 3.0, "spike x2 2h": 2.0}.get(
            self.name, 1 - 0.5 * min(1.0, (i + 1) / DAY))


KINDS = [Kind("stop", "drop", 24), Kind("drop -80% 1h", "drop", 12), Kind("spike x3 15m", "spike", 3),
         Kind("spike x2 2h", "spike", 24), Kind("slow -50% over a day", "drop", DAY)]


class Traffic:
    """Per-series counts; bursts and missing buckets drawn once per bucket so every scenario sees the same ones."""

    def __init__(self, series: list[Series], seed: int) -> None:
        self.series = series
        self.seed = seed

    def counts(self, b: int, shape: dict[str, float], burst: dict[str, float]) -> dict[SeriesKey, int]:
        rng = np.random.default_rng([self.seed, b])
        out = {}
        for s in self.series:
            if rng.random() < s.burst_rate:
                burst[s.app] = min(20.0, 1 + 0.5 * (rng.pareto(1.5) + 1)) if rng.random() < 0.7 else 1.0
            mult = burst.pop(s.app, 1.0)
            if mult > 1 and rng.random() < 0.4:
                burst[s.app] = 1 + (mult - 1) / 2  # a burst may spill into a second, smaller bucket
            lam = mean_at(s, b) * mult * shape.get(s.app, 1.0)
            lam = rng.gamma(s.k, lam / s.k) if lam > 0 else 0.0
            n = int(rng.poisson(lam))
            if rng.random() < 1 / DAY:
                n = 0  # a missing bucket
            out[SeriesKey(s.app, "src", "install")] = n
        return out


def warm(cfg: Config, traffic: Traffic, weeks: int) -> MemoryDetector:
    det = MemoryDetector(cfg)
    burst: dict[str, float] = {}
    for b in range(weeks * WEEK):
        det.step(b * B, traffic.counts(b, {}, burst))
    return det


def run(det0: MemoryDetector, traffic: Traffic, start: int, weeks: int, kind: Kind | None, seed: int,
        cfg: Config) -> dict[str, object]:
    det = copy.deepcopy(det0)
    rng = np.random.default_rng(seed)
    span = weeks * WEEK
    incidents: dict[str, list[int]] = {}  # app -> onsets
    if kind is not None:
        for s in traffic.series:
            t, ons = start + DAY // 2, []
            while t + kind.buckets + DAY < start + span:
                t += int(rng.integers(DAY // 2, 2 * DAY))
                if t + kind.buckets + DAY // 2 >= start + span:
                    break
                ons.append(t)
                t += kind.buckets
            incidents[s.app] = ons
    th = cfg.thresholds
    tail = th.recover_after + max(th.window_buckets, 1) + 24  # after the incident: its decay and resolution
    caught: dict[tuple[str, int], int] = {}
    false: list[tuple[str, int, int, float]] = []
    burst: dict[str, float] = {}
    for b in range(start, start + span):
        shape = {}
        if kind is not None:
            for app, ons in incidents.items():
                for o in ons:
                    if o <= b < o + kind.buckets:
                        shape[app] = kind.factor(b - o)
        for a in det.step(b * B, traffic.counts(b, shape, burst)):
            r = a.record
            if r["state"] != "firing" or '"repeat": true' in r["detail"]:
                continue
            app, first = r["app_id"], r["bucket_start"] // B
            hit = next((o for o in incidents.get(app, []) if o - 1 <= first < o + kind.buckets + tail), None) \
                if kind is not None else None
            inside = hit is not None and kind is not None
            if inside and r["direction"] == kind.direction and r["scope"] == "source":  # type: ignore[union-attr]
                caught.setdefault((app, hit), r["bucket_end"] // B - hit)  # type: ignore[arg-type]
            elif not inside:
                false.append((app, b, first, r["observed"] / max(r["expected"], 1e-9)))
    n_inc = sum(len(v) for v in incidents.values())
    delays = sorted(caught.values())
    by_app = {s.app: s for s in traffic.series}
    # within 2 buckets by the expected count at onset: a stop of a series expecting 2 events a bucket cannot be told
    # from noise in 2 buckets (P(0, 0) = e^-4) however good the detector
    vol = {(a, o): mean_at(by_app[a], o) for a, ons in incidents.items() for o in ons}
    score = sum(1 - 0.5 * d / (kind.buckets + tail) for d in delays) - (n_inc - len(delays)) if kind else 0.0
    score -= 0.1 * len(false)
    alpha = th.false_alarms_per_week / WEEK  # the whole budget spent on this one test
    bound = {i: best_possible(kind, m, by_app[i[0]].k, alpha) for i, m in vol.items()} if kind else {}
    return {"false_per_series_week": len(false) / (len(traffic.series) * weeks), "false": false,
            "incidents": n_inc, "recall": len(delays) / n_inc if n_inc else float("nan"),
            "within2": sum(d <= 2 for d in delays) / n_inc if n_inc else float("nan"),
            "delay_med": statistics.median(delays) * 5 if delays else float("nan"),
            "delay_p90": delays[int(0.9 * (len(delays) - 1))] * 5 if delays else float("nan"),
            "window_score": score / n_inc if n_inc else float("nan"),
            # per incident: expected count at onset, the series' k, buckets to detect (None: missed), best possible
            "per_incident": [(m, by_app[i[0]].k, caught.get(i), bound.get(i)) for i, m in vol.items()]}


VOLUMES = ((0, 5), (5, 10), (10, 20), (20, math.inf))  # expected events per bucket at onset


def best_possible(kind: Kind, mu: float, k: float, alpha: float) -> float | None:
    """The chance that the best possible test catches the incident in its first buckets (2 for a drop, the 3 of a x3
    spike) while alerting falsely at most ``alpha`` per bucket: Neyman-Pearson on those buckets' sum (the likelihood
    ratio of NB counts is monotone in it; n buckets of NB(mu, k) sum to NB(n mu, n k)), knowing the series' level and
    dispersion exactly, with no bursts and no missing buckets. No detector does better; a real one does worse."""
    rho = kind.factor(0)
    if kind.name in ("stop", "drop -80% 1h"):
        t = -1
        while cdf(t + 1, 2 * mu, 2 * k) <= alpha:
            t += 1
        return 0.0 if t < 0 else cdf(t, 2 * rho * mu, 2 * k)
    if kind.name == "spike x3 15m":
        lo, hi = int(3 * mu), int(3 * mu * 100 + 1000)
        while lo < hi:
            m = (lo + hi) // 2
            lo, hi = (lo, m) if sf(m, 3 * mu, 3 * k) <= alpha else (m + 1, hi)
        return sf(lo, 3 * rho * mu, 3 * k)
    return None


DISPERSIONS = ((3, 10), (10, 20), (20, 30))


def breakdown(kind: Kind, per: list[tuple[float, float, int | None, float | None]]) -> None:
    """Caught (within 2 buckets for a drop, at all for a spike) per volume and per dispersion, next to the best
    possible at this budget (``best_possible``, summed over the same incidents)."""
    drop = kind.direction == "drop"

    def hit(d: int | None) -> bool:
        return d is not None and (d <= 2 or not drop)

    def line(name: str, groups: tuple[tuple[float, float], ...], at: int) -> str:
        cells = []
        for lo, hi in groups:
            g = [x for x in per if lo <= (x[1] if at else x[0]) < hi]
            if g:
                best = sum(x[3] or 0.0 for x in g)
                cells.append(f"{lo:g}-{hi:g}: {sum(1 for x in g if hit(x[2]))}/{len(g)} (best {best:.0f})")
        return f"    {'caught <= 2 buckets' if drop else 'caught'} by {name}: " + ", ".join(cells)

    print(line("expected count/bucket at onset", VOLUMES, 0))
    print(line("dispersion k", DISPERSIONS, 1))
    if per and per[0][3] is not None:
        print(f"    best possible at this budget (Neyman-Pearson, level and k known, no bursts): "
              f"{sum(x[3] or 0.0 for x in per) / len(per):.2f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--series", type=int, default=12)
    p.add_argument("--warm", type=int, default=3, help="weeks of learning before the scenarios")
    p.add_argument("--weeks", type=int, default=2, help="weeks per scenario")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a threshold, e.g. --set false_alarms_per_week=2 (repeatable)")
    p.add_argument("--only", default="", help="comma-separated scenario names (prefixes) to run, e.g. normal,stop")
    args = p.parse_args()
    t0 = time.time()
    over = {k: type(getattr(Thresholds(), k))(float(v)) for k, v in (kv.split("=", 1) for kv in args.set)}
    cfg = Config(bucket_ms=B, thresholds=Thresholds(**over))
    series = make_series(args.series, np.random.default_rng(args.seed))
    traffic = Traffic(series, args.seed)
    det = warm(cfg, traffic, args.warm)
    start = args.warm * WEEK
    print(f"{len(series)} series, k {min(s.k for s in series):.1f}-{max(s.k for s in series):.1f}, mean "
          f"{min(s.mean for s in series):.0f}-{max(s.mean for s in series):.0f}/bucket; warm-up {args.warm} weeks "
          f"{time.time() - t0:.0f}s; thresholds {cfg.thresholds}")
    print(f"\n{'scenario':<22}{'false/series-wk':>16}{'recall':>8}{'<=2 buckets':>12}{'detect med':>11}"
          f"{'p90':>6}{'window score':>13}  (minutes of data)")
    falses: list[tuple[str, int, int, float]] = []
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    ran = 0
    for i, kind in enumerate([None, *KINDS]):
        if only and not any((kind.name if kind else "normal").startswith(x) for x in only):
            continue
        ran += 1
        r = run(det, traffic, start, args.weeks, kind, args.seed * 100 + i, cfg)
        falses += r["false"]  # type: ignore[arg-type]
        print(f"{kind.name if kind else 'normal':<22}{r['false_per_series_week']:>16.2f}{r['recall']:>8.2f}"
              f"{r['within2']:>12.2f}{r['delay_med']:>11.0f}{r['delay_p90']:>6.0f}{r['window_score']:>13.2f}")
        if kind is not None and kind.buckets <= 24:
            breakdown(kind, r["per_incident"])  # type: ignore[arg-type]
    by_k: dict[str, list[int]] = {"k 3-10": [0, 0], "k 10-20": [0, 0], "k 20-30": [0, 0]}
    for s in series:
        g = "k 3-10" if s.k < 10 else "k 10-20" if s.k < 20 else "k 20-30"
        by_k[g][0] += 1
        by_k[g][1] += sum(1 for f in falses if f[0] == s.app)
    weeks = args.weeks * ran
    print("\nfalse alerts per series-week by dispersion (all scenarios): " + ", ".join(
        f"{g}: {n / (c * weeks):.2f} ({c} series)" for g, (c, n) in by_k.items() if c))
    print(f"\ntotal {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
