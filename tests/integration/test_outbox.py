"""The Outbox against the embedded broker (Tansu, memory-only): what an agent step sends
arrives whole and in order, and a table's changelog offset is the one the broker gave its last
record, even when a partition's records fill several record batches."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from confluent_kafka import Consumer, TopicPartition
from faust.types import TP

from broker import clients
from streams.batch_io import Outbox

TOPIC = "outbox-check"
BATCH_BYTES = 4096  # the producer's record batch: a step's 60 records of 300 bytes fill several


class LocalStore(dict):
    """Stands in for a Faust table's local store: what a step wrote, and the changelog offset it
    remembered for recovery (the broker is real; only the table around the store is not)."""

    def __init__(self) -> None:
        super().__init__()
        self.persisted: dict[TP, int] = {}

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted[tp] = offset


class Table:
    def __init__(self) -> None:
        self.data = LocalStore()
        self.changelog_topic = self

    def get_topic_name(self) -> str:
        return TOPIC


def read_partition(bootstrap: str, partition: int, count: int) -> list[tuple[int, bytes | None, bytes | None]]:
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "outbox-check", "enable.auto.commit": False})
    reader.assign([TopicPartition(TOPIC, partition, 0)])
    found: list[tuple[int, bytes | None, bytes | None]] = []
    try:
        for _ in range(60):
            found.extend((m.offset(), m.key(), m.value()) for m in reader.consume(1000, timeout=0.5) if not m.error())
            if len(found) >= count:
                break
    finally:
        reader.close()
    return found


async def step(bootstrap: str, run: Any) -> Any:
    app = faust.App("outbox-check", broker=f"kafka://{bootstrap}", producer_max_batch_size=BATCH_BYTES)
    await app.producer.start()
    try:
        return await run(app)
    finally:
        await app.producer.stop()


def test_a_partition_filling_several_batches_arrives_in_order_and_its_changelog_offset_is_the_last(
        broker: str) -> None:
    clients.create_topics(broker, 2, names=[TOPIC])
    table = Table()
    # Partition 1 gets a record before the table's, as a step's effects come before its state.
    writes: dict[bytes, bytes | None] = {b"order-%03d" % n: b"x" * 300 for n in range(60)}
    writes[b"order-gone"] = None  # a tombstone

    async def run(app: faust.App) -> None:
        outbox = Outbox(app)
        await outbox.records(TOPIC, 1, [(b"effect", b"first")])
        await outbox.write_table(table, 1, writes)
        await outbox.records(TOPIC, 0, [(b"other", b"partition")])
        await outbox.confirm()

    asyncio.run(step(broker, run))

    stored = read_partition(broker, 1, 1 + len(writes))
    assert [(key, value) for _, key, value in stored] == [(b"effect", b"first"), *writes.items()]
    last_offset = stored[-1][0]
    assert table.data.persisted == {TP(TOPIC, 1): last_offset}
    assert set(table.data) == {key for key, value in writes.items() if value is not None}
    assert [(key, value) for _, key, value in read_partition(broker, 0, 1)] == [(b"other", b"partition")]


def test_a_record_larger_than_a_batch_goes_alone_between_the_others(broker: str) -> None:
    clients.create_topics(broker, 2, names=[TOPIC])
    records = [(b"before", b"1" * 3000), (b"large", b"y" * (4 * BATCH_BYTES)), (b"after", b"2" * 3000)]

    async def run(app: faust.App) -> None:
        outbox = Outbox(app)
        await outbox.records(TOPIC, 0, records)
        await outbox.confirm()

    asyncio.run(step(broker, run))
    assert [(key, value) for _, key, value in read_partition(broker, 0, 3)] == records
