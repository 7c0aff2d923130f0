"""`attrib route --dry-run` and `--check` with presets: what would be sent, secrets masked, no network."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from attrib.settings import Settings
from sinks.route import command

DESTS = [
    {"name": "seg", "kind": "segment", "preset": {"write_key": "wk-secret-1"}},
    {"name": "bz", "kind": "braze", "preset": {"api_key": "bz-secret-2", "region": "EU-01"}},
    {"name": "ct", "kind": "clevertap", "preset": {"account_id": "ACC", "passcode": "ct-secret-3", "region": "sg1"}},
    {"name": "amp", "kind": "amplitude", "preset": {"api_key": "amp-secret-4", "region": "eu", "api": "batch"}},
    {"name": "mp", "kind": "mixpanel", "preset": {"project_token": "mp-secret-5"}},
]


def run(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return command.main(parser.parse_args(list(argv)), settings)


def test_dry_run_prints_each_vendor_request_with_secrets_masked(capsys: pytest.CaptureFixture[str]) -> None:
    s = Settings.model_validate({"route": {"destinations": DESTS}})
    assert run(s, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "secret" not in out and out.count("***") >= 5
    for url in ("https://api.segment.io/v1/batch", "https://rest.fra-01.braze.eu/users/track",
                "https://sg1.api.clevertap.com/1/upload", "https://api.eu.amplitude.com/batch",
                "https://api.mixpanel.com/import?strict=1"):
        assert f"POST {url}" in out
    # the install carries the install attribution where each vendor expects it
    assert '"install_partner": "Facebook Ads"' in out and '"$setOnce"' in out and '"campaign": {' in out


def test_dry_run_of_a_given_event_shows_skips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ev = tmp_path / "ev.json"
    ev.write_text(json.dumps({"customer_user_id": None, "idfv": "ABCDE-12345", "user_key": "idfv:abcde-12345",
                              "properties": {"plan": "pro"}}))
    assert run(Settings.model_validate({"route": {"destinations": DESTS}}), "--dry-run", "--event", str(ev)) == 0
    out = capsys.readouterr().out
    blocks = {b.split(" ", 2)[1]: b for b in out.split("\n\n") if b.startswith("== ")}
    assert "skipped: no_identity" in blocks["ct"]  # CleverTap keys on the customer user id only
    assert '"anonymousId": "ABCDE-12345"' in blocks["seg"] and '"plan": "pro"' in blocks["seg"]
    assert '"device_id": "ABCDE-12345"' in blocks["amp"]


def test_check_names_the_missing_key(capsys: pytest.CaptureFixture[str]) -> None:
    s = Settings.model_validate({"route": {"destinations": [{"name": "bz", "kind": "braze",
                                                             "preset": {"api_key": "k"}}]}})
    assert run(s, "--check") == 2
    assert "preset.region" in capsys.readouterr().out
    assert run(Settings.model_validate({"route": {"destinations": DESTS}}), "--check") == 0
    assert "batch<=75" in capsys.readouterr().out


def test_an_http_destination_still_needs_its_url() -> None:
    with pytest.raises(ValueError, match="url is required when kind is http"):
        Settings.model_validate({"route": {"destinations": [{"name": "hook"}]}})
    with pytest.raises(ValueError, match="kind"):
        Settings.model_validate({"route": {"destinations": [{"name": "x", "kind": "salesforce"}]}})
