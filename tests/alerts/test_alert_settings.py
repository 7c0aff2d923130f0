"""AlertSettings: per-source overrides are validated at start-up and name the key."""

from __future__ import annotations

import pytest

from attrib.settings import AlertSettings, ConfigError, load


def test_source_overrides_merge_onto_defaults() -> None:
    s = AlertSettings(source_thresholds={"fb": {"min_delta": 200}})
    assert s.thresholds_for("fb").min_delta == 200 and s.thresholds_for("fb").p_value == s.thresholds.p_value
    assert s.thresholds_for("google") is s.thresholds


def test_bad_override_is_a_config_error_naming_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTRIB_ALERTS__SOURCE_THRESHOLDS", '{"fb": {"fire_after": 0}}')
    with pytest.raises(ConfigError, match=r"ATTRIB_ALERTS.*source_thresholds\[fb\].*fire_after"):
        load()


def test_mute_window_needs_a_time_and_a_timezone() -> None:
    with pytest.raises(ValueError, match="start/end or daily"):
        AlertSettings(mutes=[{"media_source": "fb"}])
    with pytest.raises(ValueError, match="timezone"):
        AlertSettings(mutes=[{"start": "2026-01-01T00:00:00"}])
