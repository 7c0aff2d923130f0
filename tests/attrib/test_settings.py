"""Settings: env beats TOML beats defaults; every bad value fails at load naming its key; secrets never printed."""

from __future__ import annotations

import json

import pytest

from attrib.settings import ConfigError, load
from ops.cli import main


def test_env_overrides_toml_overrides_defaults(tmp_path, monkeypatch):
    cfg = tmp_path / "attrib.toml"
    cfg.write_text(
        '[kafka]\nbootstrap_servers = "10.0.0.1:9092"\n'
        '[topics]\npartitions = 24\n'
        '[[sources]]\nname = "branch-prod"\nmmp = "branch"\napp_id = "com.example"\n'
        'secrets = ["s3cr3t-old", "s3cr3t-new"]\n'
    )
    monkeypatch.setenv("ATTRIB_CONFIG", str(cfg))
    monkeypatch.setenv("ATTRIB_TOPICS__PARTITIONS", "6")
    s = load()
    assert s.kafka.bootstrap_servers == "10.0.0.1:9092"  # from TOML
    assert s.topics.partitions == 6  # env wins
    assert s.topics.raw == "attrib.raw-deliveries"  # default
    src = s.source("branch-prod")
    assert src is not None and [x.get_secret_value() for x in src.secrets] == ["s3cr3t-old", "s3cr3t-new"]
    assert s.clickhouse.embedded and s.clickhouse_path == s.var_dir / "clickhouse"


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("ATTRIB_KAFKA__BOOTSTRAP_SERVERS", "localhost", "ATTRIB_KAFKA__BOOTSTRAP_SERVERS"),
        ("ATTRIB_TOPICS__PARTITIONS", "0", "ATTRIB_TOPICS__PARTITIONS"),
        ("ATTRIB_CLICKHOUSE__URL", "tcp://ch:9000", "ATTRIB_CLICKHOUSE__URL"),
        ("ATTRIB_LOG_LEVEL", "LOUD", "ATTRIB_LOG_LEVEL"),
        ("ATTRIB_SOURCES", '[{"name": "x", "mmp": "mystery"}]', "ATTRIB_SOURCES[0]__MMP"),
        ("ATTRIB_SOURCES", '[{"name": "a", "mmp": "adjust"}, {"name": "a", "mmp": "adjust"}]', "unique"),
        ("ATTRIB_KAFKA__NO_SUCH_KEY", "1", "ATTRIB_KAFKA__NO_SUCH_KEY"),
        ("ATTRIB_KAFAK__BOOTSTRAP_SERVERS", "h:1", "ATTRIB_KAFAK__BOOTSTRAP_SERVERS"),
        ("ATTRIB_SOURCES", "[not json", "ATTRIB_SOURCES"),
        ("ATTRIB_STREAMS__FETCH_MIN_BYTES", "0", "ATTRIB_STREAMS__FETCH_MIN_BYTES"),
        ("ATTRIB_STREAMS__FETCH_MAX_WAIT_MS", "5000", "ATTRIB_STREAMS__FETCH_MAX_WAIT_MS"),
    ],
)
def test_bad_values_fail_naming_the_key(monkeypatch, env, value, named):
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as err:
        load()
    assert named in str(err.value)


def test_bad_toml_values_are_named_as_written_in_the_file(monkeypatch, tmp_path):
    cfg = tmp_path / "attrib.toml"
    cfg.write_text('[streams]\nlinger_ms = "x"\n\n[[sources]]\nname = "a"\nmmp = "nope"\n')
    monkeypatch.setenv("ATTRIB_CONFIG", str(cfg))
    with pytest.raises(ConfigError) as err:
        load()
    assert f"streams.linger_ms (in {cfg})" in str(err.value) and f"sources[0].mmp (in {cfg})" in str(err.value)
    monkeypatch.setenv("ATTRIB_STREAMS__LINGER_MS", "y")  # the environment wins, so it is the one named
    with pytest.raises(ConfigError) as err:
        load()
    assert "ATTRIB_STREAMS__LINGER_MS:" in str(err.value) and f"sources[0].mmp (in {cfg})" in str(err.value)


def test_missing_config_file_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTRIB_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="ATTRIB_CONFIG"):
        load()


def test_cli_prints_settings_with_secrets_masked(monkeypatch, capsys):
    monkeypatch.setenv("ATTRIB_SOURCES", json.dumps([{"name": "lr", "mmp": "linkrunner", "verify": ["token"],
                                                      "secrets": ["tok-123456"]}]))
    monkeypatch.setenv("ATTRIB_SLACK_WEBHOOK_URL", "https://hooks.slack.example/T000/B000/XXXXSECRET")
    monkeypatch.setenv("ATTRIB_CLICKHOUSE__PASSWORD", "pw-654321")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "tok-123456" not in out and "XXXXSECRET" not in out and "pw-654321" not in out
    assert json.loads(out)["sources"][0]["name"] == "lr"


def test_cli_bad_setting_exits_2_naming_the_key(monkeypatch, capsys):
    monkeypatch.setenv("ATTRIB_TOPICS__PARTITIONS", "many")
    assert main(["config"]) == 2
    assert "ATTRIB_TOPICS__PARTITIONS" in capsys.readouterr().err
