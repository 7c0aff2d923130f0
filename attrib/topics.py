"""Create the pipeline's topics (idempotent). Every topic is keyed by the user key with the same partition count,
so one user's raw deliveries, state changelogs and outputs share a partition number."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, NewTopic

from attrib.settings import Settings


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create missing topics; return the names created. Existing topics with another partition count are an error,
    because keyed placement (and Faust's co-partitioning) would silently break."""
    t = settings.topics
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    existing = admin.list_topics(timeout=timeout).topics
    retention = {t.raw: str(int(t.raw_retention_days * 86_400_000))}
    wanted = [
        NewTopic(name, num_partitions=t.partitions, replication_factor=t.replication_factor,
                 config={"retention.ms": retention[name]} if name in retention else {})
        for name in t.all()
        if name not in existing
    ]
    for name in t.all():
        if name in existing and len(existing[name].partitions) != t.partitions:
            raise RuntimeError(f"topic {name} has {len(existing[name].partitions)} partitions, settings say "
                               f"{t.partitions} (ATTRIB_TOPICS__PARTITIONS)")
    if not wanted:
        return []
    for name, fut in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            fut.result()
        except Exception as exc:  # a concurrent creator won the race: fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return [n.topic for n in wanted]
