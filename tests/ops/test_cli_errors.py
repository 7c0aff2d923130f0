"""The `attrib` CLI's last word: any AttribError is one line, `attrib <command>: <message>`, exit 1 (2 for a
ConfigurationError); anything else is a bug and keeps its traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from attrib.errors import ConfigurationError, DependencyUnavailable
from ops import cli
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]


def _attrib(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")}
    return subprocess.run([sys.executable, "-m", "ops.cli", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**clean, "ATTRIB_VAR_DIR": str(tmp_path / "var"), **env})


def test_an_unreachable_warehouse_is_one_line_and_exit_1(tmp_path):
    got = _attrib(tmp_path, "migrate", ATTRIB_CLICKHOUSE__URL=f"http://127.0.0.1:{free_port()}")
    assert got.returncode == 1
    last = got.stderr.strip().splitlines()[-1]
    assert last.startswith("attrib migrate: ") and "Connection refused" in last
    assert "Traceback" not in got.stderr


def test_a_configuration_error_is_one_line_and_exit_2(tmp_path, kafka_bootstrap):
    raw = f"cli-{uuid.uuid4().hex[:8]}.raw"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(raw, num_partitions=2, replication_factor=1)])[raw].result(30)
    got = _attrib(tmp_path, "migrate", "--topics", ATTRIB_KAFKA__BOOTSTRAP_SERVERS=kafka_bootstrap,
                  ATTRIB_TOPICS__RAW=raw, ATTRIB_TOPICS__PARTITIONS="3")
    assert got.returncode == 2
    assert got.stderr.strip().splitlines()[-1] == (f"attrib migrate: topic {raw} has 2 partitions, settings say 3 "
                                                   "(ATTRIB_TOPICS__PARTITIONS)")


@pytest.mark.parametrize(("error", "code"), [(DependencyUnavailable("the warehouse is down"), 1),
                                             (ConfigurationError("ATTRIB_X: bad"), 2)])
def test_our_errors_from_any_command_are_one_line(monkeypatch, capsys, error, code):
    def config(args, s):
        raise error

    monkeypatch.setitem(cli.COMMANDS, "config", config)
    assert cli.main(["config"]) == code
    assert capsys.readouterr().err == f"attrib config: {error}\n"


def test_a_bug_keeps_its_traceback(monkeypatch):
    def config(args, s):
        raise KeyError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "config", config)
    with pytest.raises(KeyError, match="a bug"):
        cli.main(["config"])
