"""Many records per producer call, and proof that they were stored.

Faust sends each record, and each table write's changelog record, through its own
per-message path (buffer, future, publish, accumulator): tens of microseconds a record,
and a changelog backlog that makes every flush and commit wait. Here a batch's records for
one partition go to aiokafka as one record batch, and table writes land in the local store
and the changelog together, one batch per partition.

Every send is checked. An ``Outbox`` keeps the future of each record batch it handed to the
producer; ``confirm`` flushes and raises ``SendFailed`` if any of them failed. An agent
confirms its effects before it stores the state that remembers them, and confirms the
changelog before its input offsets can be committed (``deliver`` retries until both hold).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import faust
import rocksdict
from aiokafka.errors import KafkaError
from faust.types import TP

from models.formats import RECORD_HEADERS
from models.routing import partition_for
from streams import failpoints
from trackline.metrics import BATCH_SECONDS, STAGE

if TYPE_CHECKING:
    from streams.bulk import PartitionStep

log = logging.getLogger("trackline.send")

Record = tuple[bytes | None, bytes | None]
Headers = list[tuple[str, bytes]]

# Internal topics carry JSON arrays of documents (envelopes) to amortise per-message cost.
# An envelope is bounded by bytes, well below the producer's batch size (streams.app:
# 512 KiB) and the broker's message limit (1 MiB on Kafka's defaults).
ENVELOPE_MAX_BYTES = 256 * 1024


class SendFailed(Exception):
    """A record batch was not stored by the broker: nothing that depends on it may be stored."""


class Outbox:
    """The records one agent step sends, and their delivery futures.

    Records are gathered per partition and handed to the producer at ``confirm``, one record
    batch per partition (more only when one is full): aiokafka keeps one produce request in
    flight per broker and holds a second batch for a partition until the first has left, so a
    step that sent each partition's records as they came waited a round trip per repeat.
    """

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.futures: list[asyncio.Future] = []
        self.pending: dict[tuple[str, int], list[tuple[bytes | None, bytes | None, Headers]]] = {}
        self.changelogs: list[tuple[Any, TP]] = []  # (table, changelog partition) written by this step
        self.on_stored: list[Callable[[], None]] = []  # run once every record batch is stored

    async def records(self, topic: str, partition: int, records: Iterable[Record],
                      headers: Headers | None = None) -> None:
        """Queue records for one partition (sent at ``confirm``)."""
        headers = RECORD_HEADERS if headers is None else headers  # every record says its format
        self.pending.setdefault((topic, partition), []).extend((key, value, headers) for key, value in records)

    async def send(self) -> dict[tuple[str, int], tuple[asyncio.Future, int]]:
        """Hand the queued records to the producer; returns each partition's last record batch
        (future, record count)."""
        started = time.perf_counter()
        try:
            return await self._send()
        except KafkaError as error:  # a full queue, a closed producer: the step is retried, not lost
            raise SendFailed(f"send: {error!r}") from error
        finally:
            STAGE["produce"].inc(time.perf_counter() - started)

    async def _send(self) -> dict[tuple[str, int], tuple[asyncio.Future, int]]:
        producer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]  # Faust's aiokafka producer
        last: dict[tuple[str, int], tuple[asyncio.Future, int]] = {}
        for (topic, partition), records in self.pending.items():
            batch, count = producer.create_batch(), 0
            for key, value, headers in records:
                # A full batch goes and the record starts the next one. aiokafka takes any record
                # into an empty batch, however large: past the broker's limit, the send fails.
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    self.futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch, count = producer.create_batch(), 0
                    if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                        raise SendFailed(f"an empty batch refused a record of {len(value or b'')} bytes for {topic}")
                count += 1
            if count:
                future = await producer.send_batch(batch, topic, partition=partition)
                self.futures.append(future)
                last[(topic, partition)] = (future, count)
        self.pending.clear()
        return last

    async def keyed(self, topic: str, partitions: int, keyed: Iterable[tuple[str, bytes]]) -> None:
        """Send keyed records to the partitions Kafka's default partitioner would pick."""
        await self.records_by_key(topic, partitions, keyed)

    async def records_by_key(self, topic: str, partitions: int, keyed: Iterable[tuple[str, bytes]],
                             headers: Headers | None = None) -> None:
        """Keyed records that all carry ``headers``, each to its key's partition."""
        by_partition: dict[int, list[Record]] = defaultdict(list)
        for key, value in keyed:
            by_partition[partition_for(key, partitions)].append((key.encode(), value))
        for partition, records in by_partition.items():
            await self.records(topic, partition, records, headers=headers)

    async def envelopes(self, topic: str, partitions: int, keyed: Iterable[tuple[str, bytes]]) -> None:
        """Send JSON documents as JSON arrays, one message per destination partition and size bound.

        Each document goes to the partition its key would go to on its own, so a consumer
        that owns that partition owns every key inside the envelope.
        """
        buckets: dict[int, list[bytes]] = defaultdict(list)
        for key, document in keyed:
            buckets[partition_for(key, partitions)].append(document)
        for partition, documents in buckets.items():
            await self.records(topic, partition, [(None, envelope) for envelope in pack(documents)])

    async def write_table(self, table: Any, partition: int, items: dict[bytes, bytes | None]) -> None:
        """``table[key] = value`` for many keys of one partition, with its database current.

        A value of None deletes the key (a tombstone in the changelog). The changelog
        offset is remembered for recovery only once the broker stored it.
        """
        if not items:
            return
        _write_local(table.data, partition, items)  # the changelog follows in batches
        tp = TP(table.changelog_topic.get_topic_name(), partition)
        await self.records(tp.topic, partition, list(items.items()))
        self.changelogs.append((table, tp))

    async def confirm(self) -> None:
        """Send, flush, then raise ``SendFailed`` unless every record batch was stored."""
        last = await self.send()
        started = time.perf_counter()
        try:
            await self.app.producer.flush()
        except KafkaError as error:
            raise SendFailed(f"flush: {error!r}") from error
        results = await asyncio.gather(*self.futures, return_exceptions=True)
        STAGE["flush_wait"].inc(time.perf_counter() - started)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failpoints.hit("produce_error"):
            failed.append(SendFailed("injected by failpoint produce_error"))
        if failed:
            raise SendFailed(f"{len(failed)} of {len(results)} record batches not stored: {failed[0]!r}")
        for table, tp in self.changelogs:
            # The changelog offset is remembered for recovery only once the broker stored it.
            future, count = last[(tp.topic, tp.partition)]
            table.data.set_persisted_offset(tp, future.result().offset + count - 1)
        for stored in self.on_stored:
            stored()
        self.futures.clear()
        self.changelogs.clear()
        self.on_stored.clear()


def _write_local(store: Any, partition: int, items: dict[bytes, bytes | None]) -> None:
    """The values into the partition's local database. Faust's RocksDB store takes them as one
    write batch (its per-key path looks up the current event, serializers and a locked key
    index for every key); any other store key by key."""
    if getattr(store, "use_rocksdict", False) and hasattr(store, "_db_for_partition"):
        batch = rocksdict.WriteBatch(raw_mode=True)  # as Faust opens its databases
        for key, value in items.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        store._db_for_partition(partition).write(batch)
        return
    for key, value in items.items():
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value


def pack(documents: list[bytes], max_bytes: int = ENVELOPE_MAX_BYTES) -> list[bytes]:
    """JSON arrays of the documents, each at most ``max_bytes`` unless one document alone is larger."""
    envelopes: list[bytes] = []
    current: list[bytes] = []
    size = 2
    for document in documents:
        if current and size + len(document) + 1 > max_bytes:
            envelopes.append(b"[" + b",".join(current) + b"]")
            current, size = [], 2
        current.append(document)
        size += len(document) + 1
    if current:
        envelopes.append(b"[" + b",".join(current) + b"]")
    return envelopes


# The worker's exit status when a batch failed outside any one record (see below).
EXIT_BATCH_FAILED = 70


@asynccontextmanager
async def whole_batch_or_exit(what: str) -> AsyncIterator[None]:
    """Process one agent step, or end the process before Faust acknowledges it.

    When an agent raises, Faust acknowledges the step's events (the ``finally`` of
    ``Stream.take_events``) and commits them within a second: a batch that failed outside
    any one record (a bug between records, a local store error) would be skipped for good.
    Bad input never gets here (each record is dead-lettered alone); what does ends the
    process, unacknowledged, and the restarted worker replays the batch from the last commit.
    """
    started = time.perf_counter()
    try:
        yield
        BATCH_SECONDS.labels(what).observe(time.perf_counter() - started)
    except Exception:
        log.critical("%s: a batch failed outside any one record; exiting (status %d) without "
                     "acknowledging it, so a restart replays it", what, EXIT_BATCH_FAILED, exc_info=True)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(EXIT_BATCH_FAILED)


async def deliver(app: faust.App, what: str, produce: Callable[[Outbox], Awaitable[None]]) -> None:
    """Run ``produce`` and confirm its sends; on a failed send, back off and run it again.

    ``produce`` must be repeatable: a retry resends the same records (every effect has a
    deterministic id, so receivers drop the repeats) and rewrites the same table values.
    """
    if failpoints.hit("batch_error"):
        raise RuntimeError(f"failpoint batch_error in {what}")
    delay = 0.2
    attempt = 1
    while True:
        outbox = Outbox(app)
        try:
            await produce(outbox)
            await outbox.confirm()
            return
        except SendFailed as failure:
            log.error("%s: send failed (attempt %d), retrying in %.1fs: %s", what, attempt, delay, failure)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            attempt += 1


async def store_steps(app: faust.App, what: str, table: Any, steps: list[PartitionStep],
                      values: Mapping[int, dict[bytes, bytes | None]]) -> None:
    """Write each partition's table values with its database current (local store and changelog
    together), and return once the broker stored the changelog; a failed send is retried."""
    async def store(outbox: Outbox) -> None:
        for step in steps:
            with step.current():
                await outbox.write_table(table, step.partition, values[step.partition])

    await deliver(app, what, store)
