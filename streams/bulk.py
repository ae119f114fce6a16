"""Record batches as Faust messages: the fetch hand-off, amortised.

Faust hands every fetched record to its streams one by one (conductor, channel queue,
stream, event, ack): about 110 microseconds a record here, which caps an agent near
9,000 events/s whatever the settings. For the topics named in ``BULK_TOPICS`` this
transport hands over each fetched batch of one partition as a single message whose
value is the list of records. An agent then parses, routes and applies thousands of
records per step (``partition_steps``: every message queued for it, grouped by partition),
and table reads and writes happen with each partition's own database current.

Offsets: a batch message carries the offset of its *last* record, and a partition's
committable offset is the highest acked batch's last offset + 1. Batches of a
partition are processed and acked in order by one agent, so that is exact
at-least-once: a crash replays at most the batches not yet acked.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import faust.streams
from aiokafka.errors import IllegalStateError
from aiokafka.structs import TopicPartition
from faust.serializers.codecs import Codec
from faust.transport import drivers
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, ConsumerMessage, EventT, Message

from models import topics
from streams import watermark
from streams.watermark import PROGRESS
from trackline import metrics

SCHEME = "trackline-kafka"
log = logging.getLogger("trackline.recovery")


class RecordBatchCodec(Codec):
    """The value of a batch message is already a list of records: nothing to decode."""

    def _loads(self, s: Any) -> Any:
        return s

    def _dumps(self, s: Any) -> Any:
        return s


RECORD_BATCH = RecordBatchCodec()


# Faust asks the broker to hold a fetch up to 1.5 s. With several partitions in one fetch,
# Tansu holds it that long even when records are waiting (measured: p50 360 ms from produce
# to consume at 50 ms, 18 ms); every hop of the pipeline paid it. Kafka answers a fetch as
# soon as one byte is there, so the shorter wait only costs a few idle fetches.
FETCH_MAX_WAIT_MS = 50
# Under load, let a fetch fill up a little: fewer, larger batches amortise each batch's
# flush and table round trip; idle, the wait above bounds the delay. 1 byte measured faster at
# light load and about 4% more CPU per webhook (docs/performance.md, stop 29).
FETCH_MIN_BYTES = 64 * 1024


class ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        consumer._fetch_min_bytes = FETCH_MIN_BYTES
        return consumer


class BulkConsumer(aiokafka_driver.Consumer):
    bulk_topics: ClassVar[frozenset[str]] = frozenset()
    tansu_bootstrap: ClassVar[str | None] = None

    async def highwaters(self, *partitions: TP) -> Any:
        """End offsets for table recovery. Tansu reports the last record batch's first
        offset + 1, so recovery would stop short of the batch's other records: on Tansu
        the true end is found by reading that last batch."""
        reported = await super().highwaters(*partitions)
        if not self.tansu_bootstrap:
            return reported
        return await asyncio.get_running_loop().run_in_executor(
            None, true_end_offsets, self.tansu_bootstrap, dict(reported))

    async def perform_seek(self) -> None:
        """Seek every assigned partition to its committed offset, or to its beginning if none.

        Faust clears the agents' queues when it resumes the flow after a rebalance or a
        recovery, trusting this seek to fetch what they held again. A seek to committed leaves
        a partition with no committed offset where it is, so records fetched for it just before
        the clear were skipped for good (seen after kill -9 under load: a restarted worker whose
        dead predecessor had committed nothing on some partitions lost their first batches).
        Such a partition starts again from its beginning, as "earliest" does for a new group.
        """
        await super().perform_seek()
        uncommitted = [tp for tp in self.assignment()
                       if tp.topic in self.bulk_topics and not self._committed_offset.get(tp)]
        if uncommitted:
            try:
                await self._thread.seek_to_beginning(*(TopicPartition(tp.topic, tp.partition) for tp in uncommitted))
            except IllegalStateError:  # revoked meanwhile: the next assignment seeks again
                pass

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:  # type: ignore[override]
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        to_message = self._to_message
        deferred = False
        for tp, batch in records.items():
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                break
            if not (active_partitions is None or tp in active_partitions or tp in self._buffered_partitions):
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            if tp.topic in self.bulk_topics and batch and (self.app.rebalancing
                                                            or not self.app.flow_control.is_active()):
                # At the end of a rebalance Faust seeks to the committed offsets, then clears the
                # agents' queues: a batch fetched after the seek and handed over before the clear
                # was dropped while the fetch position had moved past it (seen under load after
                # kill -9: a restarted worker skipped whole batches). Until the rebalance is over,
                # leave the batch on the broker and fetch it again.
                self._thread.seek(tp, batch[0].offset)
                deferred = True
                continue
            if tp.topic in self.bulk_topics and batch:
                PROGRESS.delivered(tp, batch[-1].offset)
                metrics.count_in(tp.topic, batch, topics.SOURCE_HEADER)
                yield tp, self._batch_message(tp, batch)
            else:
                for record in batch:
                    yield tp, to_message(tp, record)
        if deferred:
            await asyncio.sleep(0.05)  # the flow resumes within a seek; do not spin on the same batch

    def _batch_message(self, tp: TP, batch: list[Any]) -> ConsumerMessage:
        last = batch[-1]
        # Faust types timestamp as float (its own _to_message passes None too) and value as bytes: this value is
        # the list of records, which RecordBatchCodec hands on as it is.
        return ConsumerMessage(
            tp.topic, tp.partition, last.offset,
            last.timestamp / 1000.0 if last.timestamp is not None else None,  # type: ignore[arg-type]
            last.timestamp_type, [], None, batch, None, 0,  # type: ignore[arg-type]
            sum(r.serialized_value_size or 0 for r in batch), tp,
            generation_id=self.app.consumer_generation_id,
        )

    def _new_offset(self, tp: TP) -> int | None:
        if tp.topic not in self.bulk_topics:
            return super()._new_offset(tp)
        acked = self._acked[tp]
        if not acked:
            return None
        highest = max(acked)
        acked.clear()
        self._acked_index[tp].clear()
        self._gap[tp].clear()  # batches are contiguous; a jump is compaction, not loss
        return highest + 1


# One agent step takes every batch message queued for it, up to this many: under a steady
# rate each fetch brings a few records per partition, and each step pays the broker's acks
# twice (effects, then state). One message per step let a queue form that never shrank
# (order hop p50 1.3 s at 1,000 scans/s: batches of 1 to 3 envelopes, 15 ms each); the
# queue now becomes one larger step. Idle, a step waits at most STEP_WAIT for company.
# The bound keeps a step short: a rebalance waits for the step in hand (and its acks)
# within broker_rebalance_timeout (5 s). A poll brings at most 5,000 records
# (broker_max_poll_records) as one message per partition, so 8 messages is about two polls.
STEP_MAX_BATCHES = 8
STEP_WAIT = 0.005


@dataclass
class PartitionStep:
    """The batch messages of one partition taken in one agent step, in their order."""

    partition: int
    events: list[EventT] = field(default_factory=list)

    @property
    def records(self) -> list[Any]:
        return [record for event in self.events for record in _records(event)]

    @contextmanager
    def current(self) -> Iterator[None]:
        """Faust's stores pick the partition database from the current event: reads and
        writes here must go to this partition's, whatever event the stream saw last."""
        token = faust.streams._current_event.set(weakref.ref(self.events[-1]))
        try:
            yield
        finally:
            faust.streams._current_event.reset(token)

    def processed(self) -> None:
        """Stored: each message's last record counts as read (streams.watermark)."""
        for event in self.events:
            watermark.processed(event.message, _records(event))


def _records(event: EventT) -> list[Any]:
    return cast(list[Any], event.value)  # a batch message's value is its records (RecordBatchCodec)


async def partition_steps(batches: Any) -> AsyncIterator[list[PartitionStep]]:
    """An agent's bulk stream as steps: every queued batch message, grouped by partition.
    Faust acks the messages once the step is done (``Stream.take_events``), so a crash
    replays the whole step, as it replayed one message before."""
    async for events in batches.take_events(STEP_MAX_BATCHES, STEP_WAIT):
        steps: dict[int, PartitionStep] = {}
        for event in events:
            partition = event.message.partition
            steps.setdefault(partition, PartitionStep(partition)).events.append(event)
        yield list(steps.values())


def true_end_offsets(bootstrap: str, reported: dict[TP, int], timeout: float = 60.0) -> dict[TP, int]:
    """Each partition's end, read from its last record batch (Tansu reports that batch's first
    offset + 1). The batch must be read, however slow the machine: stopping at the first quiet
    poll would return the reported, short, end while the reader is still being assigned."""
    from confluent_kafka import Consumer as KafkaConsumer
    from confluent_kafka import TopicPartition as KafkaPartition

    ends = dict(reported)
    start = {tp: offset - 1 for tp, offset in reported.items() if offset and offset > 0}
    if not start:
        return ends
    reader = KafkaConsumer({"bootstrap.servers": bootstrap, "group.id": "trackline-highwater-probe",
                            "enable.auto.commit": False})
    unread = set(start)  # partitions whose last batch has not come back yet
    deadline = time.monotonic() + timeout
    try:
        reader.assign([KafkaPartition(tp.topic, tp.partition, offset) for tp, offset in start.items()])
        quiet = 0
        while (unread or quiet < 2) and time.monotonic() < deadline:
            messages = reader.consume(10000, timeout=0.5)
            quiet = 0 if messages else quiet + 1
            for m in messages:
                if not m.error():
                    tp = TP(m.topic(), m.partition())
                    ends[tp] = max(ends[tp], m.offset() + 1)
                    unread.discard(tp)
    finally:
        reader.close()
    if unread:
        log.warning(
            "end offsets: the last record batch of %s was not read within %.0fs; using the reported ends",
            sorted(str(tp) for tp in unread), timeout)
    return ends


def bulk_transport(topics: set[str], tansu_bootstrap: str | None = None) -> str:
    """Register a transport that batches ``topics``; returns its URL scheme."""
    tansu_bootstrap_ = tansu_bootstrap

    class Consumer(BulkConsumer):
        bulk_topics = frozenset(topics)
        tansu_bootstrap = tansu_bootstrap_

    class Transport(aiokafka_driver.Transport):
        pass

    Transport.Consumer = Consumer  # type: ignore[misc]
    drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:_registered"
    globals()["_registered"] = Transport
    return SCHEME
