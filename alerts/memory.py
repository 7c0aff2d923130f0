"""The detector with its state in plain dicts: what the benchmark and the pure scenario tests drive. The Faust app
keeps the same three kinds of state (series state, seasonal cells, counts) in tables instead."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from alerts.config import Config, config_from
from alerts.detector import AlertOut, Cell, SeriesInput, SeriesKey, SeriesState, evaluate_bucket, neighbours, slots
from attrib.settings import AlertDetectSettings


class MemoryDetector:
    def __init__(self, settings: AlertDetectSettings | Config) -> None:
        self.cfg = settings if isinstance(settings, Config) else config_from(settings)
        self.states: dict[SeriesKey, SeriesState] = {}
        self.cells: dict[tuple[SeriesKey, str], Cell] = {}

    def step(self, bucket_start_ms: int, counts: dict[SeriesKey, int], now_ms: int | None = None) -> list[AlertOut]:
        """Evaluate one closed bucket. ``counts`` holds per-source counts; platform totals are derived here."""
        totals: dict[SeriesKey, int] = defaultdict(int)
        for k, n in counts.items():
            totals[k] += n
            totals[k.platform()] += n
        d, w = slots(bucket_start_ms, self.cfg.bucket_ms)
        keys: Iterable[SeriesKey] = set(self.states) | set(totals)
        per_day = 86_400_000 // self.cfg.bucket_ms
        nd, nw = neighbours(d, per_day), neighbours(w, 7 * per_day)

        def near(k: SeriesKey, pre: str, slots_: list[int]) -> tuple[Cell, ...]:
            return tuple(self.cells.get((k, f"{pre}{x}"), Cell()) for x in slots_)

        inputs = {k: SeriesInput(self.states.get(k, SeriesState()), totals.get(k, 0),
                                 self.cells.get((k, f"d{d}"), Cell()), self.cells.get((k, f"w{w}"), Cell()),
                                 near(k, "d", nd), near(k, "w", nw))
                  for k in keys}
        end = bucket_start_ms + self.cfg.bucket_ms
        out, alerts = evaluate_bucket(inputs, bucket_start_ms, end if now_ms is None else now_ms, self.cfg)
        for k, o in out.items():
            if o.state is None:
                self.states.pop(k, None)
            else:
                self.states[k] = o.state
            self.cells[(k, f"d{d}")] = o.day
            self.cells[(k, f"w{w}")] = o.week
        return alerts
