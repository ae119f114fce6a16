"""Many records per producer call.

Faust sends each record, and each table write's changelog record, through its own
per-message path (buffer, future, publish, accumulator): tens of microseconds a record,
and a changelog backlog that makes every flush and commit wait. Here a batch's records for
one partition go to aiokafka as one record batch, and table writes land in the local store
and the changelog together, one batch per partition.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import faust
from faust.types import TP

from models.routing import partition_for

Record = tuple[bytes | None, bytes | None]


async def send_records(app: faust.App, topic: str, partition: int,
                       records: list[Record]) -> list[tuple[asyncio.Future, int]]:
    """Queue records for one partition; returns (future, record count) per record batch."""
    producer = app.producer._ensure_producer()  # type: ignore[attr-defined]  # Faust's aiokafka producer
    sent: list[tuple[asyncio.Future, int]] = []
    batch, count = producer.create_batch(), 0
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:
            sent.append((await producer.send_batch(batch, topic, partition=partition), count))
            batch, count = producer.create_batch(), 0
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"a record of {len(value or b'')} bytes does not fit in a batch for {topic}")
        count += 1
    if count:
        sent.append((await producer.send_batch(batch, topic, partition=partition), count))
    return sent


async def send_keyed(app: faust.App, topic: str, partitions: int, keyed: Iterable[tuple[str, bytes]]) -> None:
    """Send keyed records to the partitions Kafka's default partitioner would pick."""
    by_partition: dict[int, list[Record]] = defaultdict(list)
    for key, value in keyed:
        by_partition[partition_for(key, partitions)].append((key.encode(), value))
    for partition, records in by_partition.items():
        await send_records(app, topic, partition, records)


ENVELOPE_MAX = 1000  # documents per message on internal topics: amortises per-message cost


async def send_envelopes(app: faust.App, topic: str, partitions: int, keyed: Iterable[tuple[str, bytes]]) -> None:
    """Send JSON documents as JSON arrays, one message per destination partition.

    Each document goes to the partition its key would go to on its own, so a consumer
    that owns that partition owns every key inside the envelope.
    """
    buckets: dict[int, list[bytes]] = defaultdict(list)
    for key, document in keyed:
        buckets[partition_for(key, partitions)].append(document)
    for partition, documents in buckets.items():
        envelopes: list[Record] = [(None, b"[" + b",".join(documents[i:i + ENVELOPE_MAX]) + b"]")
                                   for i in range(0, len(documents), ENVELOPE_MAX)]
        await send_records(app, topic, partition, envelopes)


async def write_table(app: faust.App, table: Any, partition: int, items: dict[bytes, bytes | None]) -> None:
    """``table[key] = value`` for many keys of one partition, inside stream iteration.

    A value of None deletes the key (a tombstone in the changelog).
    """
    if not items:
        return
    for key, value in items.items():
        # The local store only: the changelog follows in batches.
        if value is None:
            table.data.pop(key, None)
        else:
            table.data[key] = value
    changelog = table.changelog_topic.get_topic_name()
    tp = TP(changelog, partition)
    for future, count in await send_records(app, changelog, partition, list(items.items())):
        # As Faust does per record: remember what the changelog holds, for recovery.
        future.add_done_callback(
            lambda f, n=count: None if f.cancelled() or f.exception()
            else table.data.set_persisted_offset(tp, f.result().offset + n - 1))
