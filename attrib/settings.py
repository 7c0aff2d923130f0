"""The one typed settings object for the whole system.

Sources, highest priority first: environment variables (prefix ``ATTRIB_``, nested keys joined by ``__``, e.g.
``ATTRIB_KAFKA__BOOTSTRAP_SERVERS``), then the TOML file named by ``ATTRIB_CONFIG`` (if any), then defaults.
Invalid settings raise :class:`ConfigError` at start-up, naming the environment key. Secrets are ``SecretStr`` and
never printed (see :func:`Settings.redacted`).
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from attrib.errors import ConfigurationError, ForeignErrors

ENV_PREFIX = "ATTRIB_"
ENV_NESTED = "__"
CONFIG_ENV = "ATTRIB_CONFIG"
REPO_ROOT = Path(__file__).resolve().parent.parent

Mmp = Literal["branch", "appsflyer", "adjust", "singular", "kochava", "tenjin", "linkrunner", "generic"]


class ConfigError(ConfigurationError):
    """Settings could not be loaded; the message names the offending key(s)."""


# The seam's table (see attrib/errors.py): pydantic's validation errors become ConfigError in :func:`load`.
FOREIGN_ERRORS: ForeignErrors = {ValidationError: (ConfigError,)}


HttpMethod = Literal["GET", "POST"]
_POST_ONLY: tuple[HttpMethod, ...] = ("POST",)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


KafkaService = Literal["ingest", "worker", "sink", "router", "alerts", "notifier", "replay", "inspect", "admin"]
# Long-running consumer-group members: each gets a stable group.instance.id (static membership), so a restarted
# process takes its partitions back at once instead of waiting for the dead member's session to time out.
GROUP_MEMBERS: tuple[KafkaService, ...] = ("worker", "sink", "router", "alerts", "notifier")
_SSL_PROTOCOLS = ("SSL", "SASL_SSL")
_SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")


class KafkaSettings(_Section):
    """How every Kafka client connects (attrib/kafka.py builds all client configs from this)."""

    bootstrap_servers: str = "127.0.0.1:9092"
    produce_timeout_s: float = Field(15.0, gt=0, description=(
        "Ingress answers 503 if Kafka has not acked by then; outlasts the fencing of a dead broker (~10 s)."))
    schema_registry_url: str | None = None
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, validate_default=True, description="Required with SASL_PLAINTEXT / SASL_SSL.")
    sasl_username: str | None = Field(None, validate_default=True)
    sasl_password: SecretStr | None = Field(None, validate_default=True)
    ssl_ca_file: Path | None = Field(None, description="PEM CA bundle of the brokers' certificates (else system CAs).")
    ssl_cert_file: Path | None = Field(None, description="PEM client certificate (mTLS).")
    ssl_key_file: Path | None = Field(None, description="PEM private key of ssl_cert_file.")
    ssl_key_password: SecretStr | None = None
    ssl_check_hostname: bool = Field(True, description="Verify the broker certificate names the host we dialled.")
    client_id: str = Field("attrib", pattern=r"^[A-Za-z0-9._-]{1,200}$",
                           description="client.id prefix; each client appends its service (attrib-sink …).")
    instance_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,200}$",
                                    description="This replica's stable name for static group membership; "
                                                "default the hostname. Two replicas of a service must differ.")
    group_instance_ids: dict[KafkaService, str] = Field(
        default_factory=dict, description="group.instance.id per service (default <instance_id>-<service>); "
                                          "an empty string turns static membership off for that service.")
    session_timeout_s: float = Field(30.0, ge=6, le=300, description="Consumer-group session timeout: how long a "
                                     "member that vanished keeps its partitions (a restart with the same "
                                     "group.instance.id takes them back at once).")

    @field_validator("bootstrap_servers")
    @classmethod
    def _hosts(cls, v: str) -> str:
        for hp in v.split(","):
            host, sep, port = hp.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port[,host:port…], got {hp!r}")
        return v

    # Consistency checks run per field (validate_default) so an error names the key to fix, not the section.
    @field_validator("sasl_mechanism", "sasl_username", "sasl_password")
    @classmethod
    def _sasl(cls, v: Any, info: ValidationInfo) -> Any:
        proto = info.data.get("security_protocol")
        if proto is None:  # security_protocol itself is invalid and reported
            return v
        empty = v is None or v == "" or (isinstance(v, SecretStr) and not v.get_secret_value())
        if proto in _SASL_PROTOCOLS and empty:
            raise ValueError(f"required when security_protocol is {proto}")
        if proto not in _SASL_PROTOCOLS and v is not None:
            raise ValueError(f"set, but security_protocol {proto} does not use SASL "
                             "(use SASL_SSL or SASL_PLAINTEXT, or remove it)")
        return v

    @field_validator("ssl_ca_file", "ssl_cert_file", "ssl_key_file")
    @classmethod
    def _ssl_file(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        proto = info.data.get("security_protocol")
        if v is None or proto is None:
            return v
        if proto not in _SSL_PROTOCOLS:
            raise ValueError(f"set, but security_protocol {proto} does not use TLS (use SSL or SASL_SSL)")
        if not v.is_file():
            raise ValueError(f"file not found: {v}")
        return v

    @model_validator(mode="after")
    def _pairs(self) -> KafkaSettings:
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            raise ValueError("ssl_cert_file and ssl_key_file must be set together (a client certificate needs both)")
        if self.ssl_key_password is not None and self.ssl_key_file is None:
            raise ValueError("ssl_key_password is set without ssl_key_file")
        return self


class TopicSettings(_Section):
    raw: str = "attrib.raw-deliveries"
    events: str = "attrib.events"
    dead_letters: str = "attrib.dead-letters"
    alerts_spike: str = "attrib.alerts.spike"
    alerts_drop: str = "attrib.alerts.drop"
    arrivals: str = Field("attrib.arrivals", description="Ingress heartbeats (deliveries per source, JSON); one "
                          "partition, whatever `partitions` says: one alerts worker judges every source.")
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
    methods: list[HttpMethod] = Field(default_factory=lambda: list(_POST_ONLY))
    ip_allowlist: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict, description="Scheme/normalizer options (header names …).")
    event_allowlist: list[str] = Field(default_factory=list, description="Event names/types kept (empty = all).")
    first_time_only: list[str] = Field(default_factory=list, description="Event names/types kept once per user.")


class StackSettings(_Section):
    """The local development stack (a real Kafka broker run from Maven Central jars)."""

    jars_dir: Path = REPO_ROOT / "var" / "kafka" / "lib"
    pom: Path = REPO_ROOT / "dev" / "kafka" / "pom.xml"
    controller_port: int = Field(9093, gt=0, lt=65536)
    brokers: int = Field(1, ge=1, le=9, description="Nodes `attrib stack up` starts (combined broker+controller).")
    controller_ports: list[int] = Field(
        default_factory=list,
        description="Controller port per node when brokers > 1; default controller_port, +2, +4, …")
    heap: str = "-Xms256m -Xmx1g"
    jit: Literal["c1", "full"] = Field(
        "c1", description="The stack's JVMs: `c1` starts ~3x cheaper; `full` (C1+C2, as a production broker runs) "
        "costs ~half the broker CPU per record under sustained load (bench/e2e.py uses it).")
    start_timeout_s: float = Field(90.0, gt=0)


# --- per-area sections: each area (ingest/, streams/, sinks/, alerts) owns and extends its own class ---------------


class IngestSettings(_Section):
    """The aiohttp ingress (ingest/). Per-source verification lives in SourceSettings (verify, secrets, options)."""

    host: str = "127.0.0.1"
    port: int = Field(8080, gt=0, lt=65536)
    max_body_bytes: int = Field(1_000_000, gt=0, description=(
        "Limit on the body, also after gzip/deflate decoding (Adjust's documented callback maximum: 1 MB)."))
    workers: int = Field(1, ge=1, le=64, description="Processes sharing the port (SO_REUSEPORT).")
    read_timeout_s: float = Field(10.0, gt=0, description="Whole body must arrive within this; else 408.")
    keepalive_timeout_s: float = Field(75.0, gt=0)
    header_timeout_s: float = Field(5.0, gt=0, description="Request line + headers must arrive within this; else 408.")
    shutdown_timeout_s: float = Field(15.0, gt=0, description="Grace for in-flight deliveries on SIGTERM.")
    trusted_proxies: list[str] = Field(default_factory=list, description="CIDRs whose X-Forwarded-* are believed.")
    tls_cert: Path | None = Field(None, description="Serve HTTPS with this PEM certificate (and tls_key).")
    tls_key: Path | None = None
    rejections_kept: int = Field(500, ge=1, le=100_000, description="Recent rejections shown on /ops/rejections.")
    ops_allowlist: list[str] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
        description="CIDRs allowed to read /ops/rejections.")
    retry_after_s: int = Field(5, ge=1, description="Retry-After on 503 when Kafka can't take a delivery.")
    linger_ms: float = Field(1.0, ge=0, le=1000, description="Producer batching delay; small keeps acks fast.")
    producer: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Extra librdkafka settings (cannot weaken acks/idempotence).")
    spool_after_s: float = Field(0.5, gt=0, description=(
        "Kafka's ack not in by then: the delivery is fsync'd to the local spool and answered 2xx (README "
        "'Durability and shutdown'); keep it under the shortest sender timeout (Branch: 2 s). Per source: "
        "options.spool_after_s."))
    spool_max_bytes: int = Field(1 << 30, ge=0, description=(
        "Bound of the local spool on disk; full → 503 after kafka.produce_timeout_s as without it. 0 = no spool."))
    spool_segment_bytes: int = Field(16 << 20, gt=0, description="Spool segment size (deleted whole once drained).")
    spool_high_water: float = Field(0.5, gt=0, le=1, description=(
        "/readyz answers 503 while the spool holds more than this share of spool_max_bytes."))
    spool_dir: Path | None = Field(None, description="Spool directory; default <var_dir>/ingest-spool.")
    arrivals_interval_s: float = Field(30.0, ge=1, le=300, description=(
        "Each ingress process sends one heartbeat (deliveries per source since the last) to topics.arrivals this "
        "often; a silent source is judged at this resolution."))

    @field_validator("trusted_proxies", "ops_allowlist")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        import ipaddress

        for c in v:
            ipaddress.ip_network(c, strict=False)  # ValueError names the bad entry
        return v

    @model_validator(mode="after")
    def _tls_pair(self) -> IngestSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be set together")
        return self


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
    metrics_host: str = Field("127.0.0.1", description="Address the metrics port binds (0.0.0.0 for a scraper "
                                                       "on another host); loopback like every operator port.")
    standby_replicas: int = Field(0, ge=0)
    commit_interval_s: float = Field(2.8, gt=0)
    max_poll_records: int = Field(2000, gt=0)
    fetch_max_wait_ms: int = Field(100, gt=0, le=1500, description=(
        "Longest a fetch waits for fetch_min_bytes to accumulate (Faust's is 1500); bounds the latency it adds."))
    fetch_min_bytes: int = Field(1 << 20, ge=1, le=50 << 20, description=(
        "A fetch returns once this much is ready (or after fetch_max_wait_ms): fewer, larger fetches cut the "
        "worker's and the broker's per-fetch CPU; 1 = return at the first record (aiokafka's default)."))
    buffer_maxsize: int = Field(16384, gt=0)
    linger_ms: int = Field(50, ge=0, description="Output/changelog batching delay (also bounds output latency).")
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", description="uvloop cuts the worker's CPU per delivery by ~10% (bench/worker.py).")


class SinkSettings(_Section):
    """The ClickHouse sink (sinks/)."""

    batch_rows: int = Field(100_000, gt=0, description="A batch closes at this many records (or batch_bytes, or "
                            "batch_seconds after its first record). Each insert costs the engine ~50 ms whatever its "
                            "size, so under load big batches are what keeps up; at low rates batch_seconds decides.")
    batch_bytes: int = Field(64 << 20, gt=0, description="... or at this many bytes of fast-path record bodies "
                             "(bounds memory for wide records such as raw deliveries).")
    batch_seconds: float = Field(0.5, gt=0, description="... or this long after its first record: the sink's share "
                                 "of the end-to-end latency (p99 ≈ batch_seconds + ~0.1 s). Smaller means smaller "
                                 "parts at moderate rates, which the engine merges at a CPU cost.")
    query_port: int = Field(8124, gt=0, lt=65536,
                            description="Port of /health, /metrics and (embedded mode) read-only SQL.")
    query_host: str = Field("127.0.0.1", description="Bind address of query_port. Server mode only may bind beyond "
                            "loopback (a Prometheus in another container); embedded mode serves SQL without a login.")
    group_id: str = "attrib-sink"
    raw_ttl_days: int = Field(7, ge=1, le=3650, description="raw_deliveries keeps verified deliveries this long.")
    archive_raw: bool = Field(True, description="Also load the raw-deliveries topic into raw_deliveries.")
    rollup_refresh_s: float = Field(2.0, gt=0,
                                    description="Rebuild the daily rollups of touched days at most this often.")
    retry_initial_s: float = Field(0.5, gt=0, description="First backoff when ClickHouse refuses a batch.")
    retry_max_s: float = Field(30.0, gt=0, description="Backoff ceiling while ClickHouse stays unreachable.")


class AlertThresholds(_Section):
    """Detector thresholds; every field may be overridden per media source (AlertSettings.source_thresholds)."""

    false_alarms_per_week: float = Field(0.5, gt=0, le=1000, description="The false-alarm budget: on normal "
                                         "traffic a series raises at most about this many alerts a week. Every "
                                         "test alerts only on what is rarer than that *for this series* (its own "
                                         "history calibrates the rarity).")
    abnormal_p: float = Field(0.05, gt=0, lt=0.5, description="A bucket rarer than this (for its series) is abnormal: "
                              "it extends a run towards an alert and keeps an open incident open.")
    silence_p_value: float = Field(1e-6, gt=0, lt=0.5, description="Silence timer (series expecting < min_expected "
                                   "per bucket): alert when P(no event for that long) drops below this.")
    dispersion_prior_k: float = Field(10.0, gt=0, description="Negative-binomial size k a new series starts from "
                                      "(Var = mu + mu^2/k); each series then learns its own from clean buckets.")
    calibration_halflife_days: float = Field(28.0, gt=0, description="Memory of the per-series score calibration.")
    min_expected: float = Field(5.0, ge=0, description="Drops are tested per bucket only above this expected count; "
                                "below it the silence timer applies.")
    min_delta: float = Field(5.0, ge=0, description="A spike needs at least this many extra events per bucket.")
    window_buckets: int = Field(6, ge=0, description="Also test the sum of the last W buckets (moderate, sustained "
                                "changes a single bucket cannot show); 0 = off.")
    fire_after: int = Field(2, ge=1, description="Consecutive abnormal buckets before a run can fire (window and "
                            "silence tests fire at once).")
    recover_after: int = Field(6, ge=1, description="Consecutive clean buckets that resolve an incident (30 min).")
    warmup_buckets: int = Field(12, ge=1, description="Buckets of history before a series is evaluated.")
    ewma_alpha: float = Field(0.3, gt=0, le=1, description="Weight of the newest bucket in the no-history baseline.")
    season_alpha: float = Field(0.3, gt=0, le=1, description="Weight of the newest day/week in a seasonal slot.")
    min_seasons: int = Field(3, ge=1, description="Days (weeks) of history before the daily (weekly) slot is used.")


class MuteWindow(_Section):
    """Alerts matching app/source/event type (unset = any) are not sent while muted. Either an absolute [start, end)
    or a daily UTC window 'HH:MM-HH:MM' (may wrap midnight)."""

    app_id: str | None = None
    media_source: str | None = None
    event_type: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    daily: str | None = Field(None, pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$")

    @model_validator(mode="after")
    def _window(self) -> MuteWindow:
        if self.daily is None and self.start is None and self.end is None:
            raise ValueError("a mute window needs start/end or daily")
        for t in (self.start, self.end):
            if t is not None and t.tzinfo is None:
                raise ValueError("start/end need a timezone, e.g. 2026-01-01T00:00:00Z")
        return self


class QualifiedInstallRule(_Section):
    """Installs worth an info ping: any listed campaign, or revenue >= min_revenue (both optional; none = off)."""

    event_types: list[str] = Field(default_factory=lambda: ["install"])
    campaigns: list[str] = Field(default_factory=list)
    min_revenue: float | None = Field(None, ge=0)

    @property
    def enabled(self) -> bool:
        return bool(self.campaigns) or self.min_revenue is not None


class AlertDetectSettings(_Section):
    """Detection (`attrib alerts`, ``[alerts.detect]``): buckets, thresholds, per-source overrides, mutes."""

    bucket_s: int = Field(300, gt=0, description="Counting bucket.")
    lateness_s: int = Field(600, ge=0, description="A bucket is judged this long after it closed (late events).")
    series_ttl_s: float = Field(14 * 86400, gt=0, description="Forget a series silent (and not firing) this long.")
    platform_min_sources: int = Field(2, ge=1, description="Sources abnormal together that make a platform alert.")
    repeat_s: float = Field(3600, gt=0, description="An open alert is repeated at most this often.")
    thresholds: AlertThresholds = AlertThresholds()
    source_thresholds: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="media source ('*' = platform) -> AlertThresholds fields to override.")
    mutes: list[MuteWindow] = Field(default_factory=list)

    @model_validator(mode="after")
    def _overrides(self) -> AlertDetectSettings:
        base = self.thresholds.model_dump()
        for src, over in self.source_thresholds.items():
            try:
                AlertThresholds(**{**base, **over})
            except ValidationError as exc:
                raise ValueError(f"source_thresholds[{src}]: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}") \
                    from None
        return self

    def thresholds_for(self, media_source: str) -> AlertThresholds:
        over = self.source_thresholds.get(media_source)
        return self.thresholds if not over else AlertThresholds(**{**self.thresholds.model_dump(), **over})


class AlertArrivalsSettings(_Section):
    """Silence judged from arrival (``[alerts.arrivals]``): the ingress heartbeats say when each source last delivered;
    a source pages when that silence is rarer than the budget for its own usual rate (README "Alerts")."""

    enabled: bool = Field(True, description="Judge each source's silence from the ingress heartbeats.")
    false_alarms_per_week: float = Field(1.0, gt=0, le=100, description=(
        "Budget per source: page when a silence this long is expected less often than this per week at the "
        "source's usual rate (1/min steady: ~9 min; 10/min: ~1.1 min; 1/hour: ~5 h)."))
    min_days: int = Field(1, ge=0, le=7, description=(
        "Previous days with history at this hour before a source can page (0 = judge from the last hours alone; "
        "then the first quiet night after a start may page)."))
    history_days: int = Field(7, ge=1, le=28, description="Days of hourly history kept per source.")


class AlertSlackSettings(_Section):
    """Delivery (`attrib notify`, ``[alerts.slack]``): webhooks, pacing, retries, message content, pings."""

    group_id: str = Field("attrib-notify", description="Consumer group of `attrib notify`.")
    webhooks: dict[Literal["info", "warning", "critical"], SecretStr] = Field(
        default_factory=dict, description="Slack incoming webhook per severity; missing = slack_webhook_url.")
    min_interval_s: float = Field(1.0, ge=0, description="At most one message per this many s per webhook.")
    timeout_s: float = Field(10.0, gt=0)
    max_backoff_s: float = Field(60.0, gt=0)
    qualified: QualifiedInstallRule = QualifiedInstallRule()
    ping_batch_s: float = Field(10.0, gt=0, description="Qualified-install pings are batched this long.")
    ping_batch_max: int = Field(20, gt=0, le=40)
    sql_database: str | None = Field(None, description="Database named in the investigate SQL; default "
                                     "clickhouse.database.")
    dashboard_url: str | None = Field(None, description="Optional chart link template with {app_id} {media_source} "
                                      "{event_type} {start} {end} (epoch s) {start_iso} {end_iso}.")
    ops_url: str | None = Field(None, description="Base URL of the ingress's operator endpoints that alerts link "
                                "to (`/ops/rejections?source=…`); default http://<ingest.host>:<ingest.port>.")


# flat keys of the single pre-split section -> (sub-section, key): old env/TOML settings keep working
_ALERT_LEGACY = {
    **{k: ("detect", k) for k in ("bucket_s", "lateness_s", "series_ttl_s", "platform_min_sources", "repeat_s",
                                  "thresholds", "source_thresholds", "mutes")},
    "notify_group": ("slack", "group_id"), "webhooks": ("slack", "webhooks"),
    "slack_min_interval_s": ("slack", "min_interval_s"), "slack_timeout_s": ("slack", "timeout_s"),
    "slack_max_backoff_s": ("slack", "max_backoff_s"), "qualified": ("slack", "qualified"),
    "ping_batch_s": ("slack", "ping_batch_s"), "ping_batch_max": ("slack", "ping_batch_max"),
    "sql_database": ("slack", "sql_database"), "dashboard_url": ("slack", "dashboard_url"),
}


class AlertSettings(_Section):
    """Alerts (alerts/): the counting/evaluation Faust app's runtime here; detection in ``detect``, Slack delivery in
    ``slack``. The flat keys of the pre-split section (e.g. ``ATTRIB_ALERTS__BUCKET_S``) are still accepted."""

    app_id: str = Field("attrib-alerts", description="Faust app id (consumer group) of `attrib alerts`.")
    counts_topic: str | None = Field(None, description="Internal one-partition topic; default <app_id>-counts.")
    data_dir: Path | None = Field(None, description="Faust data directory; default <var_dir>/alerts.")
    store: str = Field("memory://", description="Faust table store: memory:// (rebuilt from changelogs at start) or "
                       "rocksdb:// for many series.")
    tick_interval_s: float = Field(30.0, ge=0, description="How often the evaluator checks that the worker's "
                                   "progress keeps up with the wall clock (logs when it does not); 0 = no timer.")
    batch_within_s: float = Field(1.0, gt=0, description="The worker sends its counts for alerts (one record per "
                                  "raw partition) at least this often, and with every offset commit.")
    ready_port: int = Field(9105, ge=0, lt=65536, description="`attrib alerts` serves /readyz here (200 once it "
                            "owns the counts partition and its tables are recovered); 0 = off.")
    ready_host: str = Field("127.0.0.1", description="Bind address of ready_port.")
    max_catchup_buckets: int = Field(288, gt=0)
    detect: AlertDetectSettings = AlertDetectSettings()
    slack: AlertSlackSettings = AlertSlackSettings()
    arrivals: AlertArrivalsSettings = AlertArrivalsSettings()

    @model_validator(mode="before")
    @classmethod
    def _legacy_flat_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(k in _ALERT_LEGACY for k in data):
            return data
        out = {k: v for k, v in data.items() if k not in _ALERT_LEGACY}
        for k, raw in data.items():
            if k in _ALERT_LEGACY:
                sec, key = _ALERT_LEGACY[k]
                cur = out.get(sec)
                cur = dict(cur) if isinstance(cur, dict) else (cur.model_dump() if isinstance(cur, BaseModel) else {})
                # env JSON for a field the env source did not know was complex (no longer a field of this section)
                v = json.loads(raw) if isinstance(raw, str) and raw.lstrip()[:1] in ("{", "[") else raw
                cur.setdefault(key, v)  # an explicit nested key wins over its flat alias
                out[sec] = cur
        return out


class PresetSettings(_Section):
    """Options of a vendor preset (``kind`` other than ``http``); which a vendor needs: README "Outbound routing"."""

    region: str | None = Field(default=None, description="Vendor data region/instance (us, eu, in1, US-03 …).")
    endpoint: str | None = Field(default=None, description="Base URL instead of the region's (a proxy, a test).")
    write_key: SecretStr | None = Field(default=None, description="Segment source write key.")
    api_key: SecretStr | None = Field(default=None, description="Braze REST API key / Amplitude project API key.")
    account_id: str | None = Field(default=None, description="CleverTap account id.")
    passcode: SecretStr | None = Field(default=None, description="CleverTap account passcode.")
    project_token: SecretStr | None = Field(default=None, description="Mixpanel project token.")
    project_id: str | None = Field(default=None, description="Mixpanel project id (with a service account).")
    service_account: str | None = Field(default=None, description="Mixpanel service account user name.")
    service_secret: SecretStr | None = Field(default=None, description="Mixpanel service account secret.")
    api: Literal["httpapi", "batch"] = Field(default="httpapi", description="Amplitude: /2/httpapi or /batch.")
    app_id: str | None = Field(default=None, description="Braze app identifier sent with events (optional).")
    mapping: dict[str, str] = Field(
        default_factory=dict, description="Vendor field → event key path(s) ('a|b' = first present); '' drops it.")
    anonymous: bool = Field(default=True, description="No customer id: key on the device id where the vendor can.")
    batch_size: int | None = Field(default=None, ge=1, description="Events per request (default/cap: the vendor's).")
    batch_wait_s: float = Field(default=0.2, ge=0, description="How long a worker waits to fill a batch.")


class DestinationSettings(_Section):
    """One outbound destination of `attrib route`: a filter on the enriched event and an HTTP target."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    kind: Literal["http", "segment", "braze", "clevertap", "amplitude", "mixpanel"] = Field(
        default="http", description="http = url/body templates; a vendor name = that vendor's preset (see preset).")
    preset: PresetSettings = Field(default_factory=PresetSettings)
    url: str = Field(default="", description="URL template; {{ path }} tags are filled from the event, URL-encoded.")
    method: Literal["POST", "GET"] = "POST"
    body: str | None = Field(None,
                             description="POST body template ({{ path }} → JSON value); unset = the event as JSON.")
    content_type: str = "application/json"
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="Static headers (auth tokens…).")
    filters: dict[str, str | int | float | bool | list[str]] = Field(
        default_factory=dict, description="key path → value (or '*' = present, or a list = any of); AND-ed.")
    events: list[str] = Field(default_factory=list, description="Allowlist of event names/types (empty = all).")
    first_time_per_user: bool = Field(False, description="Send only the first matching event per user and event.")
    missing: Literal["error", "empty", "skip"] = Field(
        "error", description="A template tag without value: dead-letter, fill empty/null, or skip the event.")
    max_attempts: int = Field(6, ge=1, le=100)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    timeout_s: float = Field(10.0, gt=0)
    rate_per_s: float = Field(50.0, gt=0, description="Token-bucket rate limit of requests.")
    burst: int = Field(10, ge=1)
    concurrency: int = Field(4, ge=1, le=256, description="Requests in flight to this destination.")
    queue_size: int = Field(10_000, ge=1, description="Events waiting for this destination.")
    breaker_failures: int = Field(5, ge=1, description="Consecutive failed attempts that open the circuit.")
    breaker_reset_s: float = Field(30.0, gt=0, description="Open circuit waits this long before one probe.")

    @model_validator(mode="after")
    def _url_for_http(self) -> DestinationSettings:
        if self.kind == "http" and not self.url:
            raise ValueError(f"destination {self.name}: url is required when kind is http")
        return self


class RouteSettings(_Section):
    """Outbound routing of enriched events (sinks/route, `attrib route`)."""

    group_id: str = "attrib-route"
    state_dir: Path | None = Field(None, description="First-time-per-user stores; default <var_dir>/route.")
    metrics_port: int = Field(9104, ge=0, lt=65536, description="Prometheus /metrics port; 0 = off.")
    metrics_host: str = Field("127.0.0.1", description="Bind address of metrics_port (0.0.0.0 for a Prometheus "
                              "in another container).")
    commit_interval_s: float = Field(1.0, gt=0)
    start: Literal["latest", "earliest"] = Field(
        "latest", description="Where a partition without a committed offset in group_id starts: latest = events from "
                              "now on (default); earliest = everything retained in topics.events (a backfill).")
    destinations: list[DestinationSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> RouteSettings:
        names = [d.name for d in self.destinations]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"destination names must be unique, repeated: {sorted(dup)}")
        return self


class InspectorSettings(_Section):
    """The live delivery inspector (sinks/inspect, `attrib inspect`): an operator page, off unless enabled."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8090, gt=0, lt=65536)
    token: SecretStr | None = Field(None, description="Bearer/?token= required by every request; must be set.")
    keep: int = Field(2000, ge=10, description="Latest deliveries kept in memory.")
    rejections_url: str | None = Field(None, description="Ingress rejection feed (default http://<ingest>/_rejections).")
    redact_keys: list[str] = Field(default_factory=list, description="Extra payload keys to mask.")


class ReplaySettings(_Section):
    """`attrib replay`: re-processing archived raw deliveries and dead letters."""

    state_dir: Path | None = Field(None, description="Resumable replay checkpoints; default <var_dir>/replay.")
    batch: int = Field(500, gt=0)


class ReportingSettings(_Section):
    """Analysts' view (schemas/partners.py, ops/fx.py, ops/dashboard/): canonical partners, one reporting currency."""

    currency: str = Field("USD", pattern=r"^[A-Z]{3}$", description="Reporting currency (ISO-4217) revenue is "
                          "converted to, at the rate of the event's day (`attrib fx load`).")
    fx_max_age_days: int = Field(4, ge=0, le=31, description="A day without a published rate (weekend, holiday) uses "
                                 "the latest earlier rate at most this many days old; older = flagged unconverted.")
    partners: dict[str, str] = Field(default_factory=dict, description="Raw partner value (any MMP's spelling) -> "
                                     "canonical partner id; adds to / overrides schemas/partners.csv.")
    partner_names: dict[str, str] = Field(default_factory=dict, description="Display names of partner ids that "
                                          "reporting.partners introduces.")

    @field_validator("partners")
    @classmethod
    def _partner_ids(cls, v: dict[str, str]) -> dict[str, str]:
        bad = sorted(i for i in v.values() if not re.fullmatch(r"[a-z0-9]+(?:_[a-z0-9]+)*", i))
        if bad:
            raise ValueError(f"partner ids must be snake_case [a-z0-9_], got {bad}")
        return v


class DashboardSettings(_Section):
    """`attrib dashboard`: charts over the warehouse (loopback, token required)."""

    host: str = "127.0.0.1"
    port: int = Field(8091, gt=0, lt=65536)
    token: SecretStr | None = Field(None, description="Bearer token every data request needs (>= 16 characters).")


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
    route: RouteSettings = RouteSettings()
    inspector: InspectorSettings = InspectorSettings()
    replay: ReplaySettings = ReplaySettings()
    reporting: ReportingSettings = ReportingSettings()
    dashboard: DashboardSettings = DashboardSettings()

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
        toml = config_file()
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


DEMO_CONFIG_NAME = "demo.toml"


def config_file() -> str | None:
    """The TOML settings file: ``ATTRIB_CONFIG``, else ``<var_dir>/demo.toml`` — the demo sources `attrib run` copies
    there on a machine without sources, so every later command (send, tail, replay, config) sees the same ones."""
    toml = os.environ.get(CONFIG_ENV)
    if toml:
        return toml
    demo = Path(os.environ.get(ENV_PREFIX + "VAR_DIR") or REPO_ROOT / "var") / DEMO_CONFIG_NAME
    return str(demo) if demo.is_file() else None


def load(**overrides: Any) -> Settings:
    """Build settings from env/TOML (plus explicit overrides); raise ConfigError naming each bad key."""
    known = {ENV_PREFIX + f.upper() for f in Settings.model_fields} | {CONFIG_ENV, "ATTRIB_TEST_BOOTSTRAP"}
    unknown = sorted(k for k in os.environ if k.upper().startswith(ENV_PREFIX)
                     and k.upper().split(ENV_NESTED)[0] not in known)
    if unknown:  # a typo would otherwise silently fall back to the default
        raise ConfigError("invalid settings:\n  " + "\n  ".join(f"{k}: unknown setting" for k in unknown))
    toml = config_file()
    if toml and not Path(toml).is_file():
        raise ConfigError(f"{CONFIG_ENV}: file not found: {toml}")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False, include_input=False):
            lines.append(f"{_name(err['loc'], toml)}: {err['msg']}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
    except ValueError as exc:  # e.g. unparsable JSON in a complex env var or a broken TOML file
        m = re.search(r'field "([^"]+)"', str(exc))
        key = _key((m[1],)) if m else CONFIG_ENV
        cause = exc.__cause__ or exc
        raise ConfigError(f"invalid settings:\n  {key}: {cause}") from None


def key_name(*loc: int | str) -> str:
    """A settings key as the user wrote it (``ATTRIB_SOURCES[0]__VERIFY`` or ``sources[0].verify (in attrib.toml)``),
    for checks that run after loading (e.g. the ingress compiling its sources)."""
    return _name(loc, config_file())


def _name(loc: tuple[int | str, ...], toml: str | None) -> str:
    """The bad key as the user wrote it: the environment variable, or the TOML key when the file set it."""
    env = _key(loc)
    from_env = any(k.upper() == env or env.startswith(k.upper() + ENV_NESTED) or env.startswith(k.upper() + "[")
                   for k in os.environ)
    if toml and not from_env and loc:
        dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)[1:]
        return f"{dotted} (in {toml})"
    return env


def _key(loc: tuple[int | str, ...]) -> str:
    head = ENV_PREFIX + str(loc[0]).upper() if loc else ENV_PREFIX
    rest = "".join(f"[{p}]" if isinstance(p, int) else f"{ENV_NESTED}{str(p).upper()}" for p in loc[1:])
    return head + rest


@lru_cache(maxsize=1)
def get() -> Settings:
    """Process-wide settings, loaded once."""
    return load()
