"""The detector's configuration as plain frozen dataclasses. The pydantic settings (attrib/settings.py) are converted
once, here, at the seam: the detector, the benchmark and the pure tests never see a pydantic model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel

from attrib.settings import AlertDetectSettings, AlertThresholds, MuteWindow

T = TypeVar("T")


@dataclass(frozen=True)
class Thresholds:
    """Mirror of :class:`attrib.settings.AlertThresholds` (descriptions and validation live there)."""

    false_alarms_per_week: float = 0.5
    abnormal_p: float = 0.05
    silence_p_value: float = 1e-6
    dispersion_prior_k: float = 10.0
    calibration_halflife_days: float = 28.0
    min_expected: float = 5.0
    min_delta: float = 5.0
    window_buckets: int = 6
    fire_after: int = 2
    recover_after: int = 6
    warmup_buckets: int = 12
    ewma_alpha: float = 0.3
    season_alpha: float = 0.3
    min_seasons: int = 3


@dataclass(frozen=True)
class Mute:
    app_id: str | None = None
    media_source: str | None = None
    event_type: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    daily: str | None = None  # 'HH:MM-HH:MM' UTC, may wrap midnight


@dataclass(frozen=True)
class Config:
    bucket_ms: int
    thresholds: Thresholds = Thresholds()
    overrides: dict[str, Thresholds] = field(default_factory=dict)  # media source -> thresholds
    platform_min_sources: int = 2
    repeat_ms: int = 3_600_000
    series_ttl_ms: int = 14 * 86_400_000
    mutes: tuple[Mute, ...] = ()

    def thresholds_for(self, media_source: str) -> Thresholds:
        return self.overrides.get(media_source, self.thresholds)


def _plain(cls: type[T], model: BaseModel) -> T:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # T is a dataclass
    return cls(**{k: v for k, v in model.model_dump().items() if k in names})


def thresholds_of(t: AlertThresholds) -> Thresholds:
    return _plain(Thresholds, t)


def mute_of(m: MuteWindow) -> Mute:
    return _plain(Mute, m)


def config_from(s: AlertDetectSettings) -> Config:
    return Config(bucket_ms=s.bucket_s * 1000, thresholds=thresholds_of(s.thresholds),
                  overrides={src: thresholds_of(s.thresholds_for(src)) for src in s.source_thresholds},
                  platform_min_sources=s.platform_min_sources, repeat_ms=int(s.repeat_s * 1000),
                  series_ttl_ms=int(s.series_ttl_s * 1000), mutes=tuple(mute_of(m) for m in s.mutes))
