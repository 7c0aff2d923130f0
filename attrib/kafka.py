"""The one Kafka client factory. Every Kafka client of the project — confluent-kafka Producer / Consumer / AdminClient,
the Faust apps (aiokafka underneath) and the notifier's aiokafka consumer — is configured here from
``settings.kafka``: brokers, client.id, security (TLS, SASL PLAIN / SCRAM, mTLS) and consumer-group membership
(static ``group.instance.id`` + session timeout). Kafka's errors are mapped to :mod:`attrib.errors` here as well.

Callers add only what is theirs (acks, offsets, batching); connection and security keys come from settings alone.
Before the first client of a secured cluster is built, :func:`preflight` asks the brokers for metadata once, so a
wrong password or CA fails at start with one line naming the setting, instead of librdkafka retrying forever.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

import aiokafka.errors
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from attrib.errors import AttribError, ConfigurationError, DependencyUnavailable, ForeignErrors
from attrib.settings import GROUP_MEMBERS, KafkaService, KafkaSettings, Settings

log = logging.getLogger("attrib.kafka")

# Keyed placement needs one partitioner everywhere: murmur2_random is the Java client's (and Faust's) default.
PARTITIONER = "murmur2_random"
# Keys a caller's extras may not change: connection and security come from settings only.
PROTECTED = frozenset({
    "bootstrap.servers", "metadata.broker.list", "security.protocol", "sasl.mechanism", "sasl.mechanisms",
    "sasl.username", "sasl.password", "ssl.ca.location", "ssl.certificate.location", "ssl.key.location",
    "ssl.key.password", "ssl.endpoint.identification.algorithm", "partitioner", "group.instance.id",
})
_TLS = ("SSL", "SASL_SSL")

# librdkafka error codes that no retry can fix: credentials, certificates, permissions, a fenced static member.
_CONFIG_CODES = frozenset({
    KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._SSL,
    KafkaError.ILLEGAL_SASL_STATE, KafkaError.UNSUPPORTED_SASL_MECHANISM, KafkaError._INVALID_ARG,
    KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    KafkaError.FENCED_INSTANCE_ID,
})
_SASL_HINT = "check ATTRIB_KAFKA__SASL_USERNAME / ATTRIB_KAFKA__SASL_PASSWORD / ATTRIB_KAFKA__SASL_MECHANISM"
_TLS_HINT = "check ATTRIB_KAFKA__SSL_CA_FILE / SSL_CERT_FILE / SSL_KEY_FILE / SSL_CHECK_HOSTNAME"


# --- names ------------------------------------------------------------------------------------------------------


def client_id(s: Settings, service: KafkaService) -> str:
    return f"{s.kafka.client_id}-{service}"


def group_instance_id(s: Settings, service: KafkaService, group: str, topics: Sequence[str]) -> str | None:
    """Static membership id of a long-running group member: stable across restarts of this replica, so a restarted
    process takes its partitions back at once (no rebalance, no waiting out the dead member's session).

    Default ``<hostname>-<service>-<slot>-<topics digest>``: the slot is the lowest one no live process of this host
    holds (a lock file under var_dir, released by the kernel even on SIGKILL), so replicas on one host differ and a
    restart gets its old id back. The digest of the subscribed topics is there because the broker hands a rejoining
    static leader its *previous* assignment without a rebalance, even when it now subscribes other topics (seen with
    librdkafka and Kafka 4.1): a changed subscription must be a new member. ``kafka.instance_id`` replaces
    hostname+slot; ``kafka.group_instance_ids`` sets the whole id ("" = no static membership)."""
    k = s.kafka
    if service not in GROUP_MEMBERS:
        return None
    if service in k.group_instance_ids:
        return k.group_instance_ids[service] or None
    if not topics:
        raise ValueError(f"{service}: a group member's topics are part of its group.instance.id")
    digest = hashlib.sha256("\0".join(sorted(topics)).encode()).hexdigest()[:8]
    if k.instance_id:
        return f"{k.instance_id}-{service}-{digest}"
    return f"{socket.gethostname()}-{service}-{_slot(s, service, group)}-{digest}"


_slots: dict[tuple[str, str, str], int] = {}
_held: list[IO[str]] = []  # lock files stay open for the process's life


def _slot(s: Settings, service: str, group: str) -> int:
    key = (str(s.var_dir), service, group)
    with _check_lock:
        if key in _slots:  # one process, one member per group and service
            return _slots[key]
        d = s.var_dir / "kafka-members"
        d.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", group)
        for n in range(1024):
            f = (d / f"{safe}.{service}.{n}.lock").open("a")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                continue
            _held.append(f)
            _slots[key] = n
            return n
    raise ConfigurationError(f"no free member slot under {d}; set ATTRIB_KAFKA__INSTANCE_ID")


def heartbeat_s(k: KafkaSettings) -> float:
    return min(3.0, k.session_timeout_s / 3)


# --- confluent-kafka (librdkafka) -------------------------------------------------------------------------------


def security(k: KafkaSettings) -> dict[str, Any]:
    """librdkafka security keys. Holds the password: pass it to a client, never log it."""
    conf: dict[str, Any] = {"security.protocol": k.security_protocol.lower()}
    if k.sasl_mechanism is not None:
        assert k.sasl_password is not None  # settings validation: SASL needs all three
        conf.update({"sasl.mechanism": k.sasl_mechanism, "sasl.username": k.sasl_username,
                     "sasl.password": k.sasl_password.get_secret_value()})
    if k.security_protocol in _TLS:
        conf["ssl.endpoint.identification.algorithm"] = "https" if k.ssl_check_hostname else "none"
        if k.ssl_ca_file is not None:
            conf["ssl.ca.location"] = str(k.ssl_ca_file)
        if k.ssl_cert_file is not None:
            conf.update({"ssl.certificate.location": str(k.ssl_cert_file), "ssl.key.location": str(k.ssl_key_file)})
            if k.ssl_key_password is not None:
                conf["ssl.key.password"] = k.ssl_key_password.get_secret_value()
    return conf


def _base(s: Settings, service: KafkaService, extra: dict[str, Any] | None) -> dict[str, Any]:
    own = {"bootstrap.servers": s.kafka.bootstrap_servers, "client.id": client_id(s, service),
           **security(s.kafka)}
    fixed = {**own, "partitioner": PARTITIONER}
    for key, value in (extra or {}).items():
        if key in PROTECTED and fixed.get(key) != value:
            raise ConfigurationError(f"{service}: Kafka setting {key!r} comes from ATTRIB_KAFKA__* and cannot be "
                                     "overridden per client")
    return {**(extra or {}), **own}


def producer_config(s: Settings, service: KafkaService, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**_base(s, service, extra), "partitioner": PARTITIONER}


def consumer_config(s: Settings, service: KafkaService, group: str, extra: dict[str, Any] | None = None, *,
                    topics: Sequence[str] = ()) -> dict[str, Any]:
    k = s.kafka
    conf = {"session.timeout.ms": int(k.session_timeout_s * 1000),
            "heartbeat.interval.ms": int(heartbeat_s(k) * 1000), **_base(s, service, extra), "group.id": group}
    if gid := group_instance_id(s, service, group, topics):
        conf["group.instance.id"] = gid
    return conf


def admin_config(s: Settings, service: KafkaService = "admin", extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return _base(s, service, extra)


def producer(s: Settings, service: KafkaService, extra: dict[str, Any] | None = None) -> Producer:
    preflight(s)
    return Producer(producer_config(s, service, extra))


def consumer(s: Settings, service: KafkaService, group: str, extra: dict[str, Any] | None = None, *,
             topics: Sequence[str] = ()) -> Consumer:
    """A consumer in ``group``. Long-running members (GROUP_MEMBERS) join with a static group.instance.id and must
    name the ``topics`` they will subscribe; tools (replay, inspect) read with plain membership."""
    preflight(s)
    return Consumer(consumer_config(s, service, group, extra, topics=topics))


def admin(s: Settings, service: KafkaService = "admin", extra: dict[str, Any] | None = None) -> AdminClient:
    preflight(s)
    return AdminClient(admin_config(s, service, extra))


# --- Faust and aiokafka -----------------------------------------------------------------------------------------


def ssl_context(k: KafkaSettings) -> ssl.SSLContext | None:
    """TLS context for aiokafka (None when the protocol has no TLS). Unreadable files fail naming the setting."""
    if k.security_protocol not in _TLS:
        return None
    try:
        ctx = ssl.create_default_context(cafile=str(k.ssl_ca_file) if k.ssl_ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"ATTRIB_KAFKA__SSL_CA_FILE: not a usable PEM CA bundle: {exc}") from None
    ctx.check_hostname = k.ssl_check_hostname
    if k.ssl_cert_file is not None:
        try:
            ctx.load_cert_chain(str(k.ssl_cert_file), str(k.ssl_key_file),
                                k.ssl_key_password.get_secret_value() if k.ssl_key_password else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"ATTRIB_KAFKA__SSL_CERT_FILE / SSL_KEY_FILE: cannot load the client "
                                     f"certificate: {exc}") from None
    return ctx


def aiokafka_auth(k: KafkaSettings) -> dict[str, Any]:
    """aiokafka's security keyword arguments."""
    auth: dict[str, Any] = {"security_protocol": k.security_protocol, "ssl_context": ssl_context(k)}
    if k.sasl_mechanism is not None:
        assert k.sasl_password is not None
        auth.update({"sasl_mechanism": k.sasl_mechanism, "sasl_plain_username": k.sasl_username,
                     "sasl_plain_password": k.sasl_password.get_secret_value()})
    return auth


def aiokafka_consumer(s: Settings, service: KafkaService, group: str, topics: Sequence[str]) -> dict[str, Any]:
    """Keyword arguments for ``aiokafka.AIOKafkaConsumer(*topics, ...)`` in ``group`` (add offsets handling)."""
    preflight(s)
    k = s.kafka
    return {"bootstrap_servers": k.bootstrap_servers, "client_id": client_id(s, service), "group_id": group,
            "group_instance_id": group_instance_id(s, service, group, topics),
            "session_timeout_ms": int(k.session_timeout_s * 1000),
            "heartbeat_interval_ms": int(heartbeat_s(k) * 1000), **aiokafka_auth(k)}


def faust_settings(s: Settings, service: KafkaService, app_id: str, topics: Sequence[str]) -> dict[str, Any]:
    """Keyword arguments for ``faust.App(app_id, ...)`` (add the app's own: store …). ``topics``: what its agents
    read (the changelogs follow from the app id)."""
    import faust

    preflight(s)
    k = s.kafka
    conf: dict[str, Any] = {
        "broker": [f"kafka://{hp.strip()}" for hp in k.bootstrap_servers.split(",")],
        "broker_client_id": client_id(s, service),
        "broker_session_timeout": k.session_timeout_s,
        "broker_heartbeat_interval": heartbeat_s(k),
    }
    if gid := group_instance_id(s, service, app_id, topics):
        conf["consumer_group_instance_id"] = gid
    ctx = ssl_context(k)
    if k.sasl_mechanism is not None:
        assert k.sasl_password is not None
        conf["broker_credentials"] = faust.SASLCredentials(
            username=k.sasl_username, password=k.sasl_password.get_secret_value(), ssl_context=ctx,
            mechanism=k.sasl_mechanism)
    elif ctx is not None:
        conf["broker_credentials"] = faust.SSLCredentials(ctx)
    return conf


# --- errors -----------------------------------------------------------------------------------------------------


# The seam table (tests/attrib/test_error_mapping.py): what this module maps foreign Kafka errors to.
FOREIGN_ERRORS: ForeignErrors = {KafkaException: (ConfigurationError, DependencyUnavailable),
                                  aiokafka.errors.KafkaError: (ConfigurationError, DependencyUnavailable)}


def is_configuration(err: KafkaError) -> bool:
    return err.code() in _CONFIG_CODES


def mapped(exc: BaseException | KafkaError, what: str = "Kafka") -> AttribError:
    """Our error for a Kafka failure: ConfigurationError when no retry can help (credentials, TLS, permissions),
    DependencyUnavailable otherwise. Accepts confluent-kafka's KafkaException / KafkaError and aiokafka's errors."""
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
    if isinstance(err, KafkaError):
        text = f"{what}: {err.name()}: {_one_line(err.str())}"
        if is_configuration(err):
            hint = _TLS_HINT if err.code() == KafkaError._SSL else _SASL_HINT
            return ConfigurationError(f"{text} — {hint}")
        return DependencyUnavailable(text)
    import aiokafka.errors as aerr

    config = (aerr.SaslAuthenticationFailed, aerr.AuthenticationFailedError, aerr.AuthenticationMethodNotSupported,
              aerr.UnsupportedSaslMechanismError, aerr.IllegalSaslStateError, aerr.TopicAuthorizationFailedError,
              aerr.GroupAuthorizationFailedError, aerr.ClusterAuthorizationFailedError, ssl.SSLError)
    text = f"{what}: {type(exc).__name__}: {_one_line(str(exc))}"
    if isinstance(exc, config):
        return ConfigurationError(f"{text} — {_TLS_HINT if isinstance(exc, ssl.SSLError) else _SASL_HINT}")
    return DependencyUnavailable(text)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()[:500]


# --- start-up check ---------------------------------------------------------------------------------------------

_checked: set[str] = set()
_check_lock = threading.Lock()


class _Quiet:
    """librdkafka logger for the probe: its connection errors are reported by us, once, as one line."""

    def log(self, *args: Any, **kwargs: Any) -> None:
        pass


def probe(s: Settings, timeout: float = 10.0) -> None:
    """Ask the brokers for metadata with our credentials. ConfigurationError when they refuse them (or the TLS
    handshake fails), DependencyUnavailable when none answers within ``timeout``."""
    k = s.kafka
    errors: list[KafkaError] = []
    conf: dict[str, Any] = {**admin_config(s), "error_cb": errors.append, "logger": _Quiet()}
    client = AdminClient(conf)
    where = f"Kafka at {k.bootstrap_servers} ({k.security_protocol}" + (
        f", {k.sasl_mechanism} as {k.sasl_username!r})" if k.sasl_mechanism else ")")
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
            return
        except KafkaException as exc:
            if exc.args and isinstance(exc.args[0], KafkaError):
                errors.append(exc.args[0])
        client.poll(0)  # serves error_cb
        for err in errors:
            if is_configuration(err):
                raise mapped(err, f"{where} refused the connection")
        if time.monotonic() >= deadline:
            last = f": {errors[-1].name()}" if errors else ""
            raise DependencyUnavailable(f"{where} did not answer within {timeout:.0f} s{last}")


def preflight(s: Settings, timeout: float = 10.0) -> None:
    """Once per process and secured cluster settings: fail fast on credentials/TLS problems. An unreachable cluster
    is only logged — clients wait for it as they always did. Plaintext needs no check."""
    k = s.kafka
    if k.security_protocol == "PLAINTEXT":
        return
    key = hashlib.sha256(repr(sorted(security(k).items())).encode() + k.bootstrap_servers.encode()).hexdigest()
    with _check_lock:
        if key in _checked:
            return
        try:
            probe(s, timeout)
        except DependencyUnavailable as exc:
            log.warning("kafka not reachable yet; clients will keep trying", extra={"fields": {"error": str(exc)}})
        _checked.add(key)  # ConfigurationError propagated above: not cached, the next attempt checks again
