"""A table store that restores an empty partition in bulk, before Faust's recovery starts.

Faust's recovery applies a changelog through its asyncio loop one event at a time (queue,
bookkeeping, a "recovery done?" check per event): about 250 us an event, 265 s for a node
that restores a million orders. A partition this node holds nothing of (no persisted offset)
is read here instead, in a thread, by confluent-kafka's batch consumer and written with
RocksDB write batches; the partition's persisted offset is then the last record applied, so
Faust's own recovery starts there and replays only what arrived meanwhile. Partitions with
local state (a warm restart) and standby partitions are left to Faust as before.

While a restore runs the worker is inside its rebalance callback: heartbeats go on (the event
loop is free), but a rebalance started meanwhile waits for it (group rebalance timeout).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from faust.stores import STORES
from faust.stores.rocksdb import Store

log = logging.getLogger("trackline.restore")
CHUNK = 20_000  # records per write batch: bounded memory whatever the partition's size
SCHEME = "trackline-rocksdb"


class BulkRestoringStore(Store):
    async def assign_partitions(self, table: Any, tps: Any, generation_id: int = 0) -> None:
        await super().assign_partitions(table, tps, generation_id)
        standby = self.app.assignor.assigned_standbys()
        empty = [tp for tp in tps if tp.topic in table.changelog_topic.topics and tp not in standby
                 and tp.partition in self._dbs and self.persisted_offset(tp) is None]
        if empty:
            try:
                await asyncio.to_thread(self.restore, empty)
            except Exception as error:  # the broker unreachable, a fetch error: Faust's own recovery
                # goes on from the offset persisted with the last batch written (or from the start).
                log.warning("bulk restore of %s stopped (%s); Faust's recovery takes over", empty[0].topic, error)

    def bootstrap(self) -> str:
        return ",".join(f"{url.host}:{url.port or 9092}" for url in self.app.conf.broker)

    def restore(self, tps: list[Any]) -> None:
        from confluent_kafka import Consumer, KafkaError, TopicPartition
        from rocksdict import WriteBatch

        started = time.monotonic()
        reader = Consumer({"bootstrap.servers": self.bootstrap(), "group.id": "trackline-bulk-restore",
                           "enable.auto.commit": False, "enable.partition.eof": True,
                           "fetch.max.bytes": 64 * 2**20, "max.partition.fetch.bytes": 16 * 2**20,
                           "queued.max.messages.kbytes": 256 * 1024, "log_level": 3})
        try:
            starts: dict[int, int] = {}
            ends: dict[int, int] = {}
            for tp in tps:
                low, high = reader.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=30,
                                                         cached=False)
                if high > low:  # from the log's start: on Kafka, retention may have moved it
                    starts[tp.partition], ends[tp.partition] = low, high
            if not ends:
                return
            topic = tps[0].topic
            reader.assign([TopicPartition(topic, partition, start) for partition, start in starts.items()])
            last: dict[int, int] = {}
            applied = 0
            open_partitions = set(ends)
            quiet_since = time.monotonic()
            while open_partitions:
                messages = reader.consume(CHUNK, timeout=1.0)
                if not messages:
                    # The embedded broker reports a high watermark below the true end; what is
                    # left after a quiet spell, Faust's recovery reads from the persisted offset.
                    if time.monotonic() - quiet_since > 5:
                        break
                    continue
                quiet_since = time.monotonic()
                batches: dict[int, Any] = {}
                for m in messages:
                    error = m.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            open_partitions.discard(m.partition())
                            continue
                        raise RuntimeError(f"bulk restore of {topic}: {error}")
                    batch = batches.get(m.partition())
                    if batch is None:
                        batch = batches[m.partition()] = WriteBatch(raw_mode=True)
                    value = m.value()
                    if value is None:
                        batch.delete(m.key())
                    else:
                        batch.put(m.key(), value)
                    last[m.partition()] = m.offset()
                    applied += 1
                for partition, batch in batches.items():
                    db = self._dbs[partition]
                    db.write(batch)
                    db.put(self.offset_key, str(last[partition]).encode())
                    if last[partition] >= ends[partition] - 1:
                        open_partitions.discard(partition)
            log.info("bulk restore of %s partitions %s: %s records in %.1f s", topic, sorted(ends), applied,
                     time.monotonic() - started)
        finally:
            reader.close()


STORES.aliases[SCHEME] = f"{__name__}:BulkRestoringStore"
