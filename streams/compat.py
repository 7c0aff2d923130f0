"""Everything the worker does to faust-streaming's and aiokafka's internals, in one place, for the versions it was
written against (KNOWN). Other versions are refused at start: each item below relies on private code that a release
may change silently.

- **Bounded fetch wait.** Faust creates its aiokafka consumer with a hard-coded ``fetch_max_wait_ms=1500``. aiokafka
  leaves partitions that still hold buffered records out of the next fetch, so that fetch can wait the full 1.5 s on
  the others while fresh records of the excluded partitions sit in Kafka: seconds of latency at moderate rates.
  ``WorkerConsumerThread`` caps it at ``streams.fetch_max_wait_ms``.
- **Fewer, larger fetches.** Faust passes no ``fetch_min_bytes``, so aiokafka's 1 applies: the broker answers a fetch
  at the first record, and at moderate rates the worker (and the broker) pay a whole fetch round — request, response,
  a Faust ``getmany`` turn — for a handful of records. ``WorkerConsumerThread`` sets ``streams.fetch_min_bytes``;
  the wait stays bounded by ``streams.fetch_max_wait_ms``.
- **No gap acknowledgements.** Faust (0.15) treats a jump in the offsets it reads as a gap and counts the skipped
  offsets as acknowledged, so a commit can pass them. After the post-recovery seek to the committed offsets, records
  of a getmany batch fetched before the seek still flow and move its read offset ahead; the re-fetched records below
  it are then filtered out (``offset >= read_offset``) — never handed to the agent, yet "acknowledged" as a gap: lost
  (seen in the kill test as ``first_skipped``/``next_delivered`` one apart). Our raw topic has no legitimate gaps, so
  ``WorkerConsumer`` never acknowledges one, and ``SkipGuard`` exits (70) before anything commits past skipped
  offsets: the restarted worker re-processes them.
- **Resume clears queues only when flow was suspended.** mode's ``FlowControlEvent.resume`` clears every stream
  queue each time it is called, and Faust's recovery calls it several times per rebalance — also after the streams
  flow again (records of the new assignment, read before and after the post-recovery seek, are already queued). Those
  records are dropped: never handed to the agent, never re-fetched (the fetch loop's read offset is past them, and a
  partition without a committed offset is not even seeked), and Faust's commit passes a one-record hole
  (``_new_offset`` only holds a head gap of more than one). Seen in bench/worker.py (c): the guard's exit in the first
  rebalance, one offset skipped, same generation, flow active, read offset = the skipped one. ``WorkerFlowControl``
  clears only on a suspended → active transition — the stale records of the revoked assignment still go.
- **Inline delivery when nothing can wait.** Faust's fetch loop hands each record to the conductor through mode's
  ``wait_first(callback, suspend_flow.wait())``: four tasks, an ``asyncio.wait`` and three cancellations per record,
  and the loop goes round between any two records. So fetch loop and agent advance in lockstep, one record per loop
  turn: the stream buffer (``stream_buffer_maxsize``) stays empty, the agent waits on an empty queue for every
  record, and all of that is paid per record (bench/worker.py --count: 1.0 empty-queue waits and 1.0 ``wait_first``
  per delivery in every phase, with the agent fast or slow). ``WorkerConsumer._drain_messages`` is Faust's loop
  except that a record whose delivery cannot wait (flow active, not suspended, Faust's producer buffer below its
  limit, the conductor's lock free, no subscribed stream queue full) is delivered by awaiting the callback
  directly — it completes without suspending, so there is nothing to race against; otherwise Faust's
  ``wait_first`` as before. The buffer then fills as Faust intends (pressure pauses fetching at 80 %).
- **No Monitor sensor.** Faust adds its ``Monitor`` (the statistics behind its web views, which the worker does not
  serve) to the app's sensors, and every stream event then runs its per-event bookkeeping (~3 % of the worker's
  CPU, py-spy). ``WorkerApp`` takes it out of the sensors; ``app.monitor`` itself stays (Faust's consumer calls it).
- **Our batches before every commit.** ``WorkerProducer.flush`` (Faust calls it before each offset commit) first runs
  the worker's own flush, and hands out Faust's aiokafka producer for the worker's batches.
- **Private reads and writes:** the consumer's committed offsets (lag gauge) and read offsets (``SkipGuard``'s
  log); the table's store, written directly with its persisted changelog offset kept as Faust's own changelog path
  would (`store_of`).

The changes are subclasses that only ``WorkerApp`` uses — nothing global is patched.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from importlib import metadata
from typing import Any

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, StoreT, TableT, TransportT
from mode import ServiceT
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from attrib.errors import ConfigurationError

log = logging.getLogger("attrib.worker")

# The versions whose internals this module was checked against; add one only after re-checking every item above.
KNOWN: dict[str, tuple[str, ...]] = {"faust-streaming": ("0.15.3",), "aiokafka": ("0.14.0",),
                                     "mode-streaming": ("0.7.1",)}
SKIPPED_OFFSETS_EXIT = 70


class UnsupportedVersions(ConfigurationError):
    """The installed faust-streaming/aiokafka are not versions this module's patches were written for."""


def installed(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_versions() -> None:
    """Refuse to run on faust-streaming/aiokafka versions the patches were not written for (one-line message)."""
    found = {dist: installed(dist) for dist in KNOWN}
    if all(found[dist] in KNOWN[dist] for dist in KNOWN):
        return
    have = ", ".join(f"{dist} {found[dist] or '(not installed)'}" for dist in KNOWN)
    want = ", ".join(f"{dist} {' or '.join(versions)}" for dist, versions in KNOWN.items())
    pins = " ".join(f"'{dist}=={versions[-1]}'" for dist, versions in KNOWN.items())
    raise UnsupportedVersions(
        f"installed {have}, but the worker's Faust/aiokafka patches (streams/compat.py) were written for {want}: "
        f"install those (pip install {pins}) or re-check each patch in streams/compat.py and add the versions to KNOWN")


class WorkerApp(faust.App):
    """``faust.App`` whose Kafka transport is ``WorkerTransport``."""

    def __init__(self, app_id: str, *, fetch_max_wait_ms: int, fetch_min_bytes: int, **options: Any) -> None:
        check_versions()
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.fetch_min_bytes = fetch_min_bytes
        super().__init__(app_id, **options)

    def _new_transport(self) -> TransportT:
        return WorkerTransport(self.conf.broker_consumer, self)

    def on_init_dependencies(self) -> Iterable[ServiceT]:
        dependencies = super().on_init_dependencies()  # (adds the Monitor to the sensors)
        self.sensors.remove(self.monitor)
        return dependencies

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return WorkerFlowControl(loop=self.loop)

    @property
    def worker_producer(self) -> WorkerProducer:
        producer = self.producer
        if not isinstance(producer, WorkerProducer):
            raise ConfigurationError(f"the worker needs a kafka:// broker, got {self.conf.broker_consumer[0]}")
        return producer

    @property
    def worker_consumer(self) -> WorkerConsumer:
        consumer = self.consumer
        if not isinstance(consumer, WorkerConsumer):
            raise ConfigurationError(f"the worker needs a kafka:// broker, got {self.conf.broker_consumer[0]}")
        return consumer


class WorkerFlowControl(FlowControlEvent):
    """Clears the stream queues when flow resumes after a suspension, not on every ``resume()`` call (see "Resume
    clears queues only when flow was suspended")."""

    def resume(self) -> None:
        if not self.is_active():
            super().resume()


class WorkerConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: driver.Transport) -> Any:
        consumer = super()._create_worker_consumer(transport)
        if isinstance(self.app, WorkerApp):  # aiokafka reads them when the consumer starts (its Fetcher)
            consumer._fetch_max_wait_ms = min(consumer._fetch_max_wait_ms, self.app.fetch_max_wait_ms)
            consumer._fetch_min_bytes = self.app.fetch_min_bytes
        return consumer


class WorkerConsumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return WorkerConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Never acknowledge a gap: an offset is committed only after the agent handled it."""

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        """Faust 0.15.3's ``Consumer._drain_messages`` with the inline delivery (see "Inline delivery when nothing can
        wait"); everything else as there, minus the gap acknowledgement (``_add_gap`` is a no-op here)."""
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set  # type: ignore[attr-defined]  # a mode Service
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
        commit_every = self._commit_every
        can_wait = self._delivery_can_wait
        yield_every = 100
        num_since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                ait = getmany(timeout=1.0)
                await self.sleep(0)  # Faust: getmany may be called in a loop that never yields otherwise
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await asyncio.sleep(0)
                            num_since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            if can_wait(tp):
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            else:
                                await callback(message)  # completes without suspending (nothing in it can wait)
                            set_read_offset(tp, offset)
                    unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)

    @cached_property
    def _producer_threaded(self) -> bool:
        return bool(self.app.conf.producer_threaded)

    def _delivery_can_wait(self, tp: TP) -> bool:
        """Whether the conductor's callback for a record of ``tp`` might wait: on flow control, on Faust's producer
        buffer, on the conductor's lock, or on a full stream queue (conductor.pyx ``__call__`` and ``_put``)."""
        app = self.app
        if self.suspend_flow.is_set() or not app.flow_control.is_active():
            return True
        buffer = app.producer.buffer
        # ``buffer.size`` as wait_until_ebb reads it, minus its per-call settings lookup (~1 µs): the worker's
        # producer is not threaded, so the size is that of the pending queue.
        size = buffer.size if self._producer_threaded else buffer.pending.qsize()
        if size > buffer.max_messages:
            return True
        conductor: Any = app.topics
        channels = getattr(conductor._tp_to_callback.get(tp), "channels", None)  # the Cython ConductorHandler's
        if channels is None or conductor._tp_to_callback_lock.locked():
            return True
        return any(chan.queue.full() for chan in channels)

    def committed(self, tp: TP) -> int | None:
        return self._committed_offset.get(tp)

    def read_offset(self, tp: TP) -> int | None:
        """The last offset Faust's fetch loop handed on to the streams (it drops re-fetched records below it)."""
        return self._read_offset.get(tp)


class WorkerProducer(driver.Producer):
    before_flush: Callable[[], Awaitable[None]] | None = None

    async def flush(self) -> None:
        if self.before_flush is not None:
            await self.before_flush()
        await super().flush()

    def batch_producer(self) -> Any:
        """The started aiokafka producer (raises when it is not running): the worker builds its own batches."""
        return self._ensure_producer()


class WorkerTransport(driver.Transport):
    Consumer = WorkerConsumer
    Producer = WorkerProducer


def store_of(table: TableT[Any, Any]) -> StoreT[Any, Any]:
    """The table's store (memory or RocksDB): the worker writes it directly and records its persisted changelog
    offset as Faust's own changelog callback does (RocksDB resumes recovery from there)."""
    store = table.data
    if not isinstance(store, StoreT):
        raise ConfigurationError(f"unsupported table store {type(store).__name__}")
    return store


class SkipGuard:
    """Exit like a crash when the stream skips offsets inside one assignment (see "No gap acknowledgements"): raw
    offsets are contiguous (no transactional producer, no compaction), so a forward jump is never legitimate, and
    exiting before anything commits past it makes the restarted worker re-process from the last commit.

    ``context(partition)`` adds what the consumer knows of the partition to the exit's log line (generation,
    committed and read offsets): that is what tells a Faust skip from a seek."""

    def __init__(self, context: Callable[[int], dict[str, Any]] | None = None) -> None:
        self.last: dict[int, int] = {}  # partition -> offset of the last message handled in this assignment
        self.context = context

    def check(self, partition: int, offset: int) -> None:
        prev = self.last.get(partition)
        if prev is not None and offset > prev + 1:
            fields: dict[str, Any] = {"partition": partition, "first_skipped": prev + 1, "next_delivered": offset}
            try:
                fields |= self.context(partition) if self.context is not None else {}
            finally:  # the exit must not depend on the diagnostics
                log.critical("the stream skipped offsets; exiting so that they are re-processed",
                             extra={"fields": fields})
                os._exit(SKIPPED_OFFSETS_EXIT)
        self.last[partition] = offset

    def reset(self) -> None:
        """A new assignment starts from the committed offsets, wherever they are."""
        self.last.clear()
