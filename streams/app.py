"""The Faust app of `attrib worker`, wiring only: raw deliveries in → ``Processor.handle`` (streams/processor.py) →
enriched events, dead letters and the alerts' counts (schemas/counts.py) out through ``Outputs`` (streams/outputs.py:
batched, acknowledged before every offset commit). Faust/aiokafka internals the worker depends on are in
streams/compat.py.

Expiry: Faust timers can't write tables, so a timer produces a tick record into every raw partition this worker
owns; the Processor handles it in order with the deliveries (table writes land on that partition's changelog).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import faust
from faust.types import TP

from attrib import kafka
from attrib.settings import Settings
from attrib.topics import counts_topic
from schemas.counts import Tally, gap_ms
from schemas.normalize import normalize
from streams import compat
from streams import metrics as m
from streams.outputs import Outputs
from streams.processor import Normalizer, Processor, tick_value


def new_app(settings: Settings, data_dir: Path, store: str) -> compat.WorkerApp:
    """The worker's Faust app, configured (no agents yet): also the base of bench/worker.py's (m) phase."""
    s, topics = settings.streams, settings.topics
    return compat.WorkerApp(
        s.app_id,
        fetch_max_wait_ms=s.fetch_max_wait_ms,
        fetch_min_bytes=s.fetch_min_bytes,
        **kafka.faust_settings(settings, "worker", s.app_id, [topics.raw]),
        store=store,
        datadir=str(data_dir),
        autodiscover=False,
        web_enabled=False,
        topic_partitions=topics.partitions,
        topic_replication_factor=topics.replication_factor,
        table_standby_replicas=s.standby_replicas,
        broker_commit_interval=s.commit_interval_s,
        broker_max_poll_records=s.max_poll_records,
        stream_buffer_maxsize=s.buffer_maxsize,
        stream_recovery_delay=0.0,
        consumer_auto_offset_reset="earliest",
        producer_linger_ms=s.linger_ms,
        producer_max_batch_size=1 << 20,
        producer_acks=-1,
    )


def raw_topic_and_users(app: faust.App, settings: Settings) -> tuple[Any, Any]:
    """The raw topic (bytes in) and the users table (bytes by user key), as the worker declares them."""
    topics = settings.topics
    raw = app.topic(topics.raw, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                    partitions=topics.partitions)
    return raw, app.Table("users", key_type=bytes, value_type=bytes, partitions=topics.partitions)


def build_app(settings: Settings, data_dir: Path, store: str, normalizer: Normalizer = normalize) -> faust.App:
    s, topics = settings.streams, settings.topics
    app = new_app(settings, data_dir, store)
    raw_topic, users = raw_topic_and_users(app, settings)
    # alert counts, where the events already are (schemas/counts.py)
    counts = Tally(settings.alerts.detect.bucket_s * 1000, gap_ms(s.tick_interval_s))
    outputs = Outputs(app, users, s.linger_ms / 1000, counts, counts_topic(settings), settings.alerts.batch_within_s)
    processor = Processor(settings, outputs.users, outputs.send, normalizer, counts)
    processor.serde.prepare([("enriched_event", topics.events), ("dead_letter", topics.dead_letters)])
    tasks = Tasks(app, settings, processor, outputs)
    app.agent(raw_topic, name="worker", concurrency=1)(tasks.consume)
    app.timer(interval=s.tick_interval_s)(tasks.tick)
    app.on_partitions_assigned.connect(tasks.on_assigned)
    app.on_partitions_revoked.connect(tasks.on_revoked)
    return app


class Tasks:
    """The app's agent, timer and rebalance handlers; each hands its work to the Processor."""

    def __init__(self, app: compat.WorkerApp, settings: Settings, processor: Processor, outputs: Outputs) -> None:
        self.app, self.raw, self.processor, self.outputs = app, settings.topics.raw, processor, outputs
        self.guard = compat.SkipGuard(self._partition_state)
        self.generation: int | None = None  # of the message in hand (Faust stamps each at fetch)

    async def consume(self, stream: Any) -> None:
        """The agent (concurrency 1): every raw record, in partition order."""
        async for event in stream.events():
            msg = event.message
            self.generation = msg.generation_id
            self.guard.check(msg.partition, msg.offset)
            self.outputs.partition = msg.partition  # outputs and changelog records go to the same partition number
            self.processor.handle(msg.key, msg.value, msg.partition, msg.offset)
            if self.outputs.due:
                await self.outputs.send_due()

    async def tick(self) -> None:
        """Time for the state machine: one tick record per owned raw partition (processed in order with the
        deliveries); also publishes metrics and the lag gauge."""
        consumer = self.app.worker_consumer
        assigned = [tp for tp in consumer.assignment() if tp.topic == self.raw]
        if not assigned:
            return
        value = tick_value(int(time.time() * 1000))
        for tp in assigned:
            await self.app.producer.send(self.raw, None, value, tp.partition, None, None)
            hw, committed = consumer.highwater(tp), consumer.committed(tp)
            if hw is not None and committed is not None:
                m.LAG.labels(str(tp.partition)).set(max(0, hw - committed))
        self.processor.publish_metrics()
        if self.outputs.due:  # outputs of a quiet stream still go out within the linger time
            await self.outputs.send_due()

    async def on_assigned(self, sender: Any, /, *assigned: set[TP], **_: Any) -> None:
        self.guard.reset()
        self.processor.on_assigned(self._raw_partitions(assigned))

    async def on_revoked(self, sender: Any, /, *revoked: set[TP], **_: Any) -> None:
        self.guard.reset()
        self.processor.on_revoked(self._raw_partitions(revoked))

    def _partition_state(self, partition: int) -> dict[str, Any]:
        """What the consumer knows of a raw partition, for the skip guard's log line."""
        consumer, tp = self.app.worker_consumer, TP(self.raw, partition)
        return {"generation": self.app.consumer_generation_id, "message_generation": self.generation,
                "committed": consumer.committed(tp), "read_offset": consumer.read_offset(tp),
                "assigned": tp in consumer.assignment(), "flow_active": self.app.flow_control.is_active()}

    def _raw_partitions(self, tp_sets: tuple[set[TP], ...]) -> set[int]:
        return {tp.partition for tps in tp_sets for tp in tps if tp.topic == self.raw}
