"""The one typed settings object for the whole system.

Sources, highest priority first: environment variables (prefix ``ATTRIB_``, nested keys joined by ``__``, e.g.
``ATTRIB_KAFKA__BOOTSTRAP_SERVERS``), then the TOML file named by ``ATTRIB_CONFIG`` (if any), then defaults.
Invalid settings raise :class:`ConfigError` at start-up, naming the environment key. Secrets are ``SecretStr`` and
never printed (see :func:`Settings.redacted`).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

ENV_PREFIX = "ATTRIB_"
ENV_NESTED = "__"
CONFIG_ENV = "ATTRIB_CONFIG"
REPO_ROOT = Path(__file__).resolve().parent.parent

Mmp = Literal["branch", "appsflyer", "adjust", "singular", "kochava", "tenjin", "linkrunner", "generic"]


class ConfigError(Exception):
    """Settings could not be loaded; the message names the offending key(s)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    produce_timeout_s: float = Field(5.0, gt=0, description="Ingress answers 503 if Kafka has not acked by then.")
    schema_registry_url: str | None = None

    @field_validator("bootstrap_servers")
    @classmethod
    def _hosts(cls, v: str) -> str:
        for hp in v.split(","):
            host, sep, port = hp.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port[,host:port…], got {hp!r}")
        return v


class TopicSettings(_Section):
    raw: str = "attrib.raw-deliveries"
    events: str = "attrib.events"
    dead_letters: str = "attrib.dead-letters"
    alerts_spike: str = "attrib.alerts.spike"
    alerts_drop: str = "attrib.alerts.drop"
    partitions: int = Field(12, ge=1, le=10_000)
    replication_factor: int = Field(1, ge=1, le=16)
    raw_retention_days: float = Field(7.0, gt=0)

    def all(self) -> list[str]:
        return [self.raw, self.events, self.dead_letters, self.alerts_spike, self.alerts_drop]


class ClickHouseSettings(_Section):
    url: str | None = Field(None, description="http(s)://host:port of a ClickHouse server; unset = embedded chdb.")
    path: Path | None = Field(None, description="Embedded engine directory; default <var_dir>/clickhouse.")
    database: str = Field("attribution", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    username: str = "default"
    password: SecretStr = SecretStr("")
    cluster: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        u = urlparse(v)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"expected http(s)://host:port, got {v!r}")
        return v

    @property
    def embedded(self) -> bool:
        return self.url is None


class SourceSettings(_Section):
    """One configured webhook sender. Verification fields are consumed by ingest/ (schemes may be combined)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    mmp: Mmp
    app_id: str | None = None
    verify: list[str] = Field(default_factory=list)
    secrets: list[SecretStr] = Field(default_factory=list, description="Several active at once for rotation.")
    methods: list[Literal["GET", "POST"]] = Field(default_factory=lambda: ["POST"])
    ip_allowlist: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict, description="Scheme/normalizer options (header names …).")
    event_allowlist: list[str] = Field(default_factory=list, description="Event names/types kept (empty = all).")
    first_time_only: list[str] = Field(default_factory=list, description="Event names/types kept once per user.")


class StackSettings(_Section):
    """The local development stack (a real Kafka broker run from Maven Central jars)."""

    jars_dir: Path = REPO_ROOT / "var" / "kafka" / "lib"
    pom: Path = REPO_ROOT / "dev" / "kafka" / "pom.xml"
    controller_port: int = Field(9093, gt=0, lt=65536)
    heap: str = "-Xms256m -Xmx1g"
    start_timeout_s: float = Field(90.0, gt=0)


# --- per-area sections: each area (ingest/, streams/, sinks/, alerts) owns and extends its own class ---------------


class IngestSettings(_Section):
    """The aiohttp ingress (ingest/)."""

    host: str = "127.0.0.1"
    port: int = Field(8080, gt=0, lt=65536)
    max_body_bytes: int = Field(1 << 20, gt=0)


class StreamsSettings(_Section):
    """The Faust worker (streams/)."""

    app_id: str = "attrib-worker"
    store: str = Field("memory://", description="memory:// for development, rocksdb:// for large state.")
    data_dir: Path | None = Field(None, description="Faust data directory; default <var_dir>/worker.")
    dedupe_retention_s: float = Field(7 * 86400, gt=0)
    pending_timeout_s: float = Field(24 * 3600, gt=0)
    max_pending_per_user: int = Field(100, ge=0, description="Events waiting for an install, per user.")
    max_pending_total: int = Field(1_000_000, ge=0, description="Events waiting for an install, per worker.")
    state_retention_s: float = Field(90 * 86400, gt=0, description="Idle users' attribution state is dropped after.")
    reemit_grace_s: float = Field(900, gt=0, description="How long released events stay re-emittable after a crash.")
    tick_interval_s: float = Field(5.0, gt=0, description="Expiry tick produced into every owned input partition.")
    metrics_port: int = Field(9102, ge=0, lt=65536, description="Prometheus /metrics port; 0 = off.")
    session_timeout_s: float = Field(30.0, ge=6, description="Consumer group session timeout (failover time).")
    standby_replicas: int = Field(0, ge=0)
    commit_interval_s: float = Field(2.8, gt=0)
    max_poll_records: int = Field(2000, gt=0)
    buffer_maxsize: int = Field(16384, gt=0)
    linger_ms: int = Field(50, ge=0, description="Output/changelog batching delay (also bounds output latency).")


class SinkSettings(_Section):
    """The ClickHouse sink (sinks/)."""

    batch_rows: int = Field(10_000, gt=0)
    batch_seconds: float = Field(1.0, gt=0)
    query_port: int = Field(8124, gt=0, lt=65536, description="Loopback port serving read-only SQL on embedded mode.")


class AlertSettings(_Section):
    """Spike/drop detection (streams/alerts) and Slack delivery (sinks/slack)."""

    bucket_s: int = Field(300, gt=0)
    lateness_s: int = Field(600, ge=0)


# --- the whole system ---------------------------------------------------------------------------------------------


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED, extra="forbid", frozen=True, case_sensitive=False
    )

    var_dir: Path = REPO_ROOT / "var"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    stack: StackSettings = StackSettings()
    ingest: IngestSettings = IngestSettings()
    streams: StreamsSettings = StreamsSettings()
    sink: SinkSettings = SinkSettings()
    alerts: AlertSettings = AlertSettings()
    sources: list[SourceSettings] = Field(default_factory=list)
    slack_webhook_url: SecretStr | None = None

    @model_validator(mode="after")
    def _unique_sources(self) -> Settings:
        names = [s.name for s in self.sources]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"source names must be unique, repeated: {sorted(dup)}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml = os.environ.get(CONFIG_ENV)
        if toml:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml)))
        return tuple(sources)

    @property
    def clickhouse_path(self) -> Path:
        return self.clickhouse.path or self.var_dir / "clickhouse"

    def source(self, name: str) -> SourceSettings | None:
        return next((s for s in self.sources if s.name == name), None)

    def redacted(self) -> dict[str, Any]:
        """Plain data safe to print or log: every secret masked."""
        return self.model_dump(mode="json")  # SecretStr dumps as '**********'


def load(**overrides: Any) -> Settings:
    """Build settings from env/TOML (plus explicit overrides); raise ConfigError naming each bad key."""
    known = {ENV_PREFIX + f.upper() for f in Settings.model_fields} | {CONFIG_ENV, "ATTRIB_TEST_BOOTSTRAP"}
    unknown = sorted(k for k in os.environ if k.upper().startswith(ENV_PREFIX)
                     and k.upper().split(ENV_NESTED)[0] not in known)
    if unknown:  # a typo would otherwise silently fall back to the default
        raise ConfigError("invalid settings:\n  " + "\n  ".join(f"{k}: unknown setting" for k in unknown))
    toml = os.environ.get(CONFIG_ENV)
    if toml and not Path(toml).is_file():
        raise ConfigError(f"{CONFIG_ENV}: file not found: {toml}")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False, include_input=False):
            lines.append(f"{_key(err['loc'])}: {err['msg']}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
    except ValueError as exc:  # e.g. unparsable JSON in a complex env var or a broken TOML file
        m = re.search(r'field "([^"]+)"', str(exc))
        key = _key((m[1],)) if m else CONFIG_ENV
        cause = exc.__cause__ or exc
        raise ConfigError(f"invalid settings:\n  {key}: {cause}") from None


def _key(loc: tuple[int | str, ...]) -> str:
    head = ENV_PREFIX + str(loc[0]).upper() if loc else ENV_PREFIX
    rest = "".join(f"[{p}]" if isinstance(p, int) else f"{ENV_NESTED}{str(p).upper()}" for p in loc[1:])
    return head + rest


@lru_cache(maxsize=1)
def get() -> Settings:
    """Process-wide settings, loaded once."""
    return load()
