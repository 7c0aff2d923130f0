"""docker-compose.yml can't run here (no Docker engine); this keeps it honest against the code instead."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import yaml

from attrib.settings import load
from ops.cli import COMMANDS, PLUGINS, build_parser

COMPOSE = yaml.safe_load((Path(__file__).parent.parent / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _attrib_services() -> dict[str, dict]:
    return {name: svc for name, svc in SERVICES.items() if svc.get("command", [None])[0] == "attrib"}


def _env(svc: dict) -> dict[str, str]:
    # ${VAR:?msg} interpolation is compose's; give it a value as `docker compose` would from the shell
    return {k: str(v).replace("${CLICKHOUSE_PASSWORD:?set CLICKHOUSE_PASSWORD}", "pw") for k, v in
            (svc.get("environment") or {}).items()}


def test_the_stack_has_broker_warehouse_and_attrib_roles():
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:4.")
    assert SERVICES["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert _attrib_services(), "no attrib service in compose"
    for name, svc in SERVICES.items():
        assert "healthcheck" in svc or svc.get("restart") == "no", \
            f"{name}: long-running service without a health check"


def test_every_service_command_is_a_real_subcommand():
    parser = build_parser()
    for name, svc in _attrib_services().items():
        argv = svc["command"][1:]
        assert argv[0] in COMMANDS or argv[0] in PLUGINS, f"{name}: attrib {argv[0]} does not exist"
        parser.parse_args(argv)  # exits (fails the test) on unknown flags


def test_attrib_env_names_are_settings_and_ports_agree(monkeypatch):
    kafka_env = SERVICES["kafka"]["environment"]
    advertised = urlparse(kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")[0].replace("PLAINTEXT", "kafka"))
    ch_http_port = int(SERVICES["clickhouse"]["ports"][0].split(":")[-1])
    for name, svc in _attrib_services().items():
        env = _env(svc)
        assert env and all(k.startswith("ATTRIB_") for k in env), name
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("ATTRIB_CONFIG")  # the mounted file exists only in the container
        s = load()  # an unknown ATTRIB_* name fails here
        assert s.kafka.bootstrap_servers == f"{advertised.hostname}:{advertised.port}", name
        ch = urlparse(s.clickhouse.url)
        assert ch.hostname == "clickhouse" and ch.port == ch_http_port, name
        assert s.clickhouse.username == SERVICES["clickhouse"]["environment"]["CLICKHOUSE_USER"]
        deps = svc.get("depends_on", {})
        assert {"kafka", "clickhouse"} <= set(deps), f"{name} must wait for kafka and clickhouse"
