"""Create the pipeline's topics (idempotent). Every topic is keyed by the user key with the same partition count,
so one user's raw deliveries, state changelogs and outputs share a partition number. The exceptions have one
partition: the ingress heartbeat topic (topics.arrivals), read whole by one alerts worker, and the stages' internal
topics (the alerts' counts topic, the Faust tables' changelogs), created here too, before any app joins."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic

from attrib import kafka
from attrib.errors import ConfigurationError
from attrib.settings import Settings

# `attrib alerts`' Faust tables (alert-arrivals: alerts/arrivals_agent.py's)
ALERT_TABLES = ("alert-counts", "alert-states", "alert-cells", "alert-meta", "alert-arrivals")
WORKER_TABLES = ("users",)  # `attrib worker`'s


def counts_topic(settings: Settings) -> str:
    """The alerts' counts topic: written by the worker (counts per bucket) and the alerts' own timer (ticks), read by
    the one evaluator. One partition: it is the global, ordered view."""
    return settings.alerts.counts_topic or f"{settings.alerts.app_id}-counts"


def internal_topics(settings: Settings) -> list[NewTopic]:
    """The stages' internal topics — the counts topic and every Faust table's changelog — as Faust would create them.
    Created before any app joins its group: left to Faust they appear lazily, and a group whose assignor ran before a
    topic existed ("Ignoring missing topic") leaves its partitions unowned until aiokafka's next metadata refresh
    (~5 min): the alerts' one counts partition, i.e. alerts silently off after a fresh start of all services."""
    t = settings.topics
    rf = t.replication_factor
    compact = {"cleanup.policy": "compact"}
    a, w = settings.alerts.app_id, settings.streams.app_id
    return [NewTopic(counts_topic(settings), num_partitions=1, replication_factor=rf),
            *(NewTopic(f"{a}-{name}-changelog", num_partitions=1, replication_factor=rf, config=compact)
              for name in ALERT_TABLES),
            *(NewTopic(f"{w}-{name}-changelog", num_partitions=t.partitions, replication_factor=rf, config=compact)
              for name in WORKER_TABLES)]


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create missing topics — the pipeline's and the stages' internal ones (``internal_topics``); return the names
    created. Existing topics with another partition count are an error, because keyed placement (and Faust's
    co-partitioning) would silently break (ConfigurationError). Kafka failing raises :func:`attrib.kafka.mapped`
    errors (DependencyUnavailable, ConfigurationError)."""
    t = settings.topics
    admin = kafka.admin(settings)
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise kafka.mapped(exc, f"Kafka at {settings.kafka.bootstrap_servers}") from exc
    retention = {t.raw: str(int(t.raw_retention_days * 86_400_000))}
    wanted = [
        NewTopic(name, num_partitions=t.partitions, replication_factor=t.replication_factor,
                 config={"retention.ms": retention[name]} if name in retention else {})
        for name in t.all()
    ]
    if t.arrivals not in existing:  # heartbeats: a few a minute, a day is plenty (the judge keeps its own history)
        wanted.append(NewTopic(t.arrivals, num_partitions=1, replication_factor=t.replication_factor,
                               config={"retention.ms": str(86_400_000)}))
    for name in t.all():
        if name in existing and len(existing[name].partitions) != t.partitions:
            raise ConfigurationError(f"topic {name} has {len(existing[name].partitions)} partitions, settings say "
                                     f"{t.partitions} (ATTRIB_TOPICS__PARTITIONS)")
    counts = counts_topic(settings)
    if counts in existing and len(existing[counts].partitions) != 1:  # one partition is the evaluator's global view
        raise ConfigurationError(f"topic {counts} has {len(existing[counts].partitions)} partitions, it must have 1: "
                                 "delete it or name another (ATTRIB_ALERTS__COUNTS_TOPIC)")
    # a changelog with another partition count is the owning app's business (Faust says so when it starts)
    wanted += internal_topics(settings)
    wanted = [nt for nt in wanted if nt.topic not in existing]
    if not wanted:
        return []
    for name, fut in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            fut.result()
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # a concurrent creator won the race: fine
            raise kafka.mapped(exc, f"creating topic {name}") from exc
    return [n.topic for n in wanted]


def unreachable(settings: Settings, timeout: float = 5.0) -> str | None:
    """Why the broker cannot be reached (None if it can). For interactive tools, which should say so and exit rather
    than let librdkafka retry (and log to stderr) forever; the probe's own connection logs are silenced."""
    quiet = logging.getLogger("attrib.kafka.probe")
    quiet.setLevel(logging.CRITICAL)
    admin = kafka.admin(settings, extra={"logger": quiet})
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        return (f"Kafka at {settings.kafka.bootstrap_servers} is not reachable ({exc.args[0].str()}); start it with "
                "`attrib stack up` (or `make run`), or set ATTRIB_KAFKA__BOOTSTRAP_SERVERS")
    return None
