"""Session fixtures: one real Kafka broker (started from the repo's Maven-resolved jars in a throwaway var dir on free
ports) and factories for unique topics and settings. Set ATTRIB_TEST_BOOTSTRAP=host:port to reuse a running broker."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from attrib import settings as settings_mod
from attrib.settings import Settings
from tests.support import throwaway_broker


@pytest.fixture(autouse=True)
def _clean_attrib_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build settings explicitly; a developer's ATTRIB_* environment must not leak in."""
    for k in list(os.environ):
        if k.startswith(settings_mod.ENV_PREFIX) and k != "ATTRIB_TEST_BOOTSTRAP":
            monkeypatch.delenv(k)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    reuse = os.environ.get("ATTRIB_TEST_BOOTSTRAP")
    if reuse:
        yield reuse
        return
    broker = throwaway_broker(tmp_path_factory.mktemp("stack"))
    try:
        yield broker.bootstrap
    finally:
        broker.stop(log=lambda *_: None)


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedded ClickHouse directory for the whole session: chdb binds one path per process."""
    return tmp_path_factory.mktemp("clickhouse")


@pytest.fixture
def make_settings(tmp_path: Path, kafka_bootstrap: str, chdb_path: Path) -> Callable[..., Settings]:
    """Settings on the test broker with unique topic names, a private var dir and a unique ClickHouse database."""

    def make(**overrides) -> Settings:
        tag = uuid.uuid4().hex[:8]
        base = {
            "var_dir": tmp_path / "var",
            "kafka": {"bootstrap_servers": kafka_bootstrap},
            "clickhouse": {"path": chdb_path, "database": f"t_{tag}"},
            "topics": {
                "raw": f"t-{tag}.raw", "events": f"t-{tag}.events", "dead_letters": f"t-{tag}.dlq",
                "alerts_spike": f"t-{tag}.spike", "alerts_drop": f"t-{tag}.drop", "arrivals": f"t-{tag}.arrivals",
            },
            # its own counts topic and changelogs; /readyz off unless a test gives it a free port
            "alerts": {"app_id": f"alerts-{tag}", "ready_port": 0},
            "streams": {"app_id": f"worker-{tag}"},
        }
        for k, v in overrides.items():
            base[k] = {**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v
        return Settings(**base)

    return make
