"""The ingress (confluent-kafka, murmur2_random) and Faust (aiokafka's DefaultPartitioner) must agree on where a
key lives, or an install and its later purchase would be processed by different workers."""

from __future__ import annotations

import uuid

from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Consumer, Producer, TopicPartition

from attrib.topics import ensure_topics


def test_keyed_records_land_where_aiokafka_computes_and_read_back(make_settings):
    s = make_settings(topics={"partitions": 12})
    want = [*s.topics.all(), s.topics.arrivals]
    assert ensure_topics(s)[:len(want)] == want  # then the stages' internal ones (counts, changelogs)
    assert ensure_topics(s) == []  # idempotent

    producer = Producer({"bootstrap.servers": s.kafka.bootstrap_servers, "partitioner": "murmur2_random",
                         "enable.idempotence": True, "acks": "all", "linger.ms": 5})
    placed: dict[bytes, int] = {}

    def on_delivery(err, msg):
        assert err is None, err
        placed[msg.key()] = msg.partition()

    keys = [f"adid:{uuid.uuid4().hex}".encode() for _ in range(600)] + [
        "idfv:ÄÖ-ünïcode".encode(), b"x", b"gaid:00000000-0000-0000-0000-000000000000"]
    for k in keys:
        producer.produce(s.topics.raw, key=k, value=b"v:" + k, on_delivery=on_delivery)
    assert producer.flush(30) == 0

    partitioner = DefaultPartitioner()
    all_parts = list(range(12))
    expected = {k: partitioner(k, all_parts, all_parts) for k in keys}
    assert placed == expected
    assert len(set(placed.values())) == 12  # the keys spread over every partition

    consumer = Consumer({"bootstrap.servers": s.kafka.bootstrap_servers, "group.id": f"g-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.assign([TopicPartition(s.topics.raw, p, 0) for p in all_parts])
    seen: dict[bytes, tuple[int, bytes]] = {}
    for _ in range(200):
        for msg in consumer.consume(num_messages=500, timeout=0.5):
            key, partition, value = msg.key(), msg.partition(), msg.value()
            assert msg.error() is None and key is not None and partition is not None and value is not None
            seen[key] = (partition, value)
        if len(seen) == len(keys):
            break
    consumer.close()
    assert seen == {k: (expected[k], b"v:" + k) for k in keys}
