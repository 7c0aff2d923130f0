"""Create the pipeline's topics (idempotent). Every topic is keyed by the user key with the same partition count,
so one user's raw deliveries, state changelogs and outputs share a partition number. The exception is the ingress
heartbeat topic (topics.arrivals): one partition, read whole by one alerts worker."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic

from attrib import kafka
from attrib.errors import ConfigurationError
from attrib.settings import Settings


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create missing topics; return the names created. Existing topics with another partition count are an error,
    because keyed placement (and Faust's co-partitioning) would silently break (ConfigurationError). Kafka failing
    raises :func:`attrib.kafka.mapped` errors (DependencyUnavailable, ConfigurationError)."""
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
        if name not in existing
    ]
    if t.arrivals not in existing:  # heartbeats: a few a minute, a day is plenty (the judge keeps its own history)
        wanted.append(NewTopic(t.arrivals, num_partitions=1, replication_factor=t.replication_factor,
                               config={"retention.ms": str(86_400_000)}))
    for name in t.all():
        if name in existing and len(existing[name].partitions) != t.partitions:
            raise ConfigurationError(f"topic {name} has {len(existing[name].partitions)} partitions, settings say "
                               f"{t.partitions} (ATTRIB_TOPICS__PARTITIONS)")
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
