"""Alert settings: detection and delivery are separate sections; per-source overrides are validated at start-up and
name the key; the flat keys of the pre-split section still load; the detector gets plain dataclasses."""

from __future__ import annotations

import dataclasses

import pytest

from alerts.config import Config, Mute, Thresholds, config_from, thresholds_of
from attrib.settings import AlertDetectSettings, AlertSettings, AlertThresholds, ConfigError, load


def test_source_overrides_merge_onto_defaults() -> None:
    s = AlertDetectSettings(source_thresholds={"fb": {"min_delta": 200}})
    assert s.thresholds_for("fb").min_delta == 200 and s.thresholds_for("fb").abnormal_p == s.thresholds.abnormal_p
    assert s.thresholds_for("google") is s.thresholds


def test_bad_override_is_a_config_error_naming_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTRIB_ALERTS__DETECT__SOURCE_THRESHOLDS", '{"fb": {"fire_after": 0}}')
    with pytest.raises(ConfigError, match=r"ATTRIB_ALERTS.*source_thresholds\[fb\].*fire_after"):
        load()


def test_mute_window_needs_a_time_and_a_timezone() -> None:
    with pytest.raises(ValueError, match="start/end or daily"):
        AlertDetectSettings(mutes=[{"media_source": "fb"}])
    with pytest.raises(ValueError, match="timezone"):
        AlertDetectSettings(mutes=[{"start": "2026-01-01T00:00:00"}])


def test_nested_sections_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTRIB_ALERTS__DETECT__BUCKET_S", "60")
    monkeypatch.setenv("ATTRIB_ALERTS__SLACK__MIN_INTERVAL_S", "0.5")
    monkeypatch.setenv("ATTRIB_ALERTS__SLACK__WEBHOOKS", '{"critical": "https://hooks.example/p"}')
    a = load().alerts
    assert a.detect.bucket_s == 60 and a.slack.min_interval_s == 0.5
    assert a.slack.webhooks["critical"].get_secret_value() == "https://hooks.example/p"


def test_flat_keys_of_the_old_single_section_still_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTRIB_ALERTS__BUCKET_S", "60")
    monkeypatch.setenv("ATTRIB_ALERTS__NOTIFY_GROUP", "my-notify")
    monkeypatch.setenv("ATTRIB_ALERTS__SLACK_MIN_INTERVAL_S", "2")
    monkeypatch.setenv("ATTRIB_ALERTS__THRESHOLDS", '{"min_delta": 5}')
    a = load().alerts
    assert (a.detect.bucket_s, a.slack.group_id, a.slack.min_interval_s) == (60, "my-notify", 2.0)
    assert a.detect.thresholds.min_delta == 5
    nested = AlertSettings(bucket_s=30, detect={"bucket_s": 90})
    assert nested.detect.bucket_s == 90  # the explicit nested key wins over its flat alias


def test_the_detector_gets_plain_frozen_dataclasses_mirroring_the_settings() -> None:
    assert thresholds_of(AlertThresholds()) == Thresholds()  # same fields, same defaults
    assert {f.name for f in dataclasses.fields(Thresholds)} == set(AlertThresholds.model_fields)
    s = AlertDetectSettings(source_thresholds={"fb": {"min_delta": 200}},
                            mutes=[{"media_source": "fb", "daily": "23:00-01:00"}])
    cfg = config_from(s)
    assert isinstance(cfg, Config) and cfg.thresholds_for("fb").min_delta == 200
    assert cfg.thresholds_for("google") == Thresholds()
    assert cfg.mutes == (Mute(media_source="fb", daily="23:00-01:00"),)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.thresholds.min_delta = 1  # type: ignore[misc]
