"""The deadline timer: every few seconds, a ``ClockTick`` for each order whose deadline passed.

"Passed" is judged at the ingest-time watermark (models.watermark), never at the wall
clock alone, and a tick carries that watermark as its time.

Ticks go through the order-events topic to the order agent, which runs the delay rules;
the timer itself never touches order state. It looks only at the index's due entries, so
a tick costs the same at ten thousand or a million open shipments.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import faust

from models import topics
from models.deadlines import DeadlineIndex, epoch_seconds
from models.effects import stable_id
from models.events import ClockTick
from streams.batch_io import deliver
from streams.order_store import stored_deadline
from streams.watermark import PROGRESS
from trackline import metrics

log = logging.getLogger("trackline.clock")
TICK_INTERVAL = 5.0  # seconds: detections fire well within a minute of their deadline


class PartitionDeadlines:
    """A deadline index per partition of the orders table this worker owns."""

    def __init__(self) -> None:
        self.indexes: dict[int, DeadlineIndex] = {}

    def schedule(self, partition: int, order_id: str, due: datetime | None) -> None:
        index = self.indexes.get(partition)
        if index is None:
            return  # not rebuilt yet: the rebuild reads this write from the table
        index.schedule(order_id, epoch_seconds(due) if due else None)

    def rebuild(self, partition: int, stored_items: Any) -> int:
        index = DeadlineIndex()
        for key, value in stored_items:
            due = stored_deadline(value)
            if due is not None:
                index.schedule(key.decode(), due)
        self.indexes[partition] = index
        return len(index)

    def retain(self, partitions: set[int]) -> None:
        for partition in set(self.indexes) - partitions:
            del self.indexes[partition]

    def clear(self) -> None:
        self.indexes.clear()

    def due(self, now: int) -> list[tuple[int, str, int]]:
        return [(partition, order_id, due) for partition, index in self.indexes.items()
                for order_id, due in index.due(now)]

    def acknowledge(self, ticked: list[tuple[int, str, int]]) -> None:
        for partition, order_id, due in ticked:
            index = self.indexes.get(partition)
            if index is not None:
                index.acknowledge([(order_id, due)])

    def __len__(self) -> int:
        return sum(len(index) for index in self.indexes.values())


def ticks_for(due: list[tuple[int, str, int]], now: datetime) -> list[tuple[str, bytes]]:
    # The id names the deadline and this tick: a redelivered tick is a duplicate, a later
    # tick for the same deadline is not.
    return [(order_id, ClockTick(event_id=stable_id(order_id, "tick", str(deadline), now.isoformat()),
                                 order_id=order_id,
                                 occurred_at=now, ingested_at=now).model_dump_json().encode())
            for _, order_id, deadline in due]


def register(app: faust.App, orders: Any, deadlines: PartitionDeadlines, interval: float = TICK_INTERVAL) -> None:
    partitions = app.conf.topic_partitions

    @app.timer(interval=interval, name="deadline-ticks")
    async def send_due_ticks() -> None:
        found = await due_at_watermark(app, deadlines, orders, topics.ORDER_EVENTS, "deadline")
        if found is None:
            return
        now, due = found
        if due:
            ticks = ticks_for(due, now)
            await deliver(app, "deadline ticks",
                          lambda outbox: outbox.envelopes(topics.ORDER_EVENTS, partitions, ticks))
            deadlines.acknowledge(due)
            log.debug("ticks for %s orders due by %s", len(due), now.isoformat())


async def due_at_watermark(app: faust.App, deadlines: PartitionDeadlines, table: Any, topic: str,
                           what: str) -> tuple[datetime, list[tuple[int, str, int]]] | None:
    """What is due at the ingest-time watermark, in the partitions of ``topic`` this worker owns.

    "Now" is the watermark, not the wall clock: after a backlog, a deadline is due only once
    the events that could have met it have been read. Indexes of partitions newly owned are
    rebuilt from ``table`` first. None while nothing can be judged (a rebalance, a recovery,
    or a partition with unread records and nothing read yet).
    """
    # app.tables is a TableManager, which has .recovery; Faust's TableManagerT does not declare it.
    if app.rebalancing or app.in_recovery or not app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
        return None
    owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}
    deadlines.retain(owned)
    for partition in owned - set(deadlines.indexes):
        # rocksdb holds each partition in its own database: read that one only.
        count = deadlines.rebuild(partition, table.data._db_for_partition(partition).items())
        log.info("%s index for partition %s: %s entries", what, partition, count)
    metrics.DEADLINE_INDEX_SIZE.labels(what).set(len(deadlines))
    metrics.DEADLINE_TICKS.labels(what)  # the series exists at 0 before the watermark first moves
    now = await PROGRESS.now(app)
    if now is None:
        return None
    due = deadlines.due(int(now.timestamp()))  # whole seconds down: never early
    metrics.DEADLINE_DUE.labels(what).set(len(due))
    metrics.DEADLINE_TICKS.labels(what).inc(len(due))
    return now, due
