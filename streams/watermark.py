"""Where this worker stands on each input partition, for the ingest-time watermark.

The bulk consumer reports what it hands to the agents (``delivered``); each agent reports
a batch once its effects and state are stored (``processed``). The deadline timer asks for
``now(app)``: the watermark over every input partition this worker owns (models.watermark).
One worker sees only its own partitions: with several workers, a deadline is judged on the
partitions of the worker that owns the order (the fulfillment and order-event partitions
of that order, and the scan partitions that worker reads).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from faust.types import TP

from models import topics
from models.watermark import PartitionProgress, ingest_watermark, newest_record

EXTERNAL_TOPICS = frozenset({topics.FC_EVENTS, topics.CARRIER_SCANS_RAW})
INPUT_TOPICS = frozenset({topics.FC_EVENTS, topics.CARRIER_SCANS_RAW, topics.CARRIER_SCANS_REKEYED,
                          topics.TRACKING_LINKS, topics.ORDER_EVENTS})


class WorkerProgress:
    def __init__(self) -> None:
        self.clock = "wall"  # or "records" (models.settings.watermark_clock)
        self.partitions: dict[TP, PartitionProgress] = {}
        self.last_handover: dict[TP, float] = {}
        self.high: datetime | None = None  # never go back: an alert opened stays opened

    def delivered(self, tp: TP, last_offset: int) -> None:
        if tp.topic in INPUT_TOPICS:
            self.partitions.setdefault(tp, PartitionProgress()).delivered_end = last_offset + 1
            self.last_handover[tp] = time.monotonic()

    def processed(self, tp: TP, last_offset: int, last_timestamp_ms: int | None) -> None:
        if tp.topic not in INPUT_TOPICS:
            return
        progress = self.partitions.setdefault(tp, PartitionProgress())
        progress.processed_end = last_offset + 1
        if last_timestamp_ms is not None:
            progress.last_ingested_at = datetime.fromtimestamp(last_timestamp_ms / 1000, UTC)

    def forget(self) -> None:
        """After a rebalance: positions restart from committed offsets."""
        self.partitions.clear()
        self.last_handover.clear()

    async def now(self, app: Any) -> datetime | None:
        owned = [tp for tp in app.assignor.assigned_actives() if tp.topic in INPUT_TOPICS]
        clock = time.monotonic()
        for tp in owned:
            progress = self.partitions.setdefault(tp, PartitionProgress())
            self.last_handover.setdefault(tp, clock)  # first seen: quiet counts from here
            try:
                progress.position = await app.consumer.position(tp)
                progress.end = app.consumer.highwater(tp)
            except Exception:  # not fetched yet, or moving in a rebalance: its end is unknown
                progress.position = progress.end = None
            progress.quiet_seconds = clock - self.last_handover[tp]
        progress_all = [self.partitions[tp] for tp in owned]
        # Records mode: the newest time received from outside. The internal topics' records are
        # stamped when trackline produced them (the wall clock), not when their input arrived.
        wall = datetime.now(UTC) if self.clock == "wall" else newest_record(
            [self.partitions[tp] for tp in owned if tp.topic in EXTERNAL_TOPICS])
        moment = ingest_watermark(progress_all, wall) if wall is not None else None
        if moment is not None and (self.high is None or moment > self.high):
            self.high = moment
        return self.high if moment is not None else None


PROGRESS = WorkerProgress()


def processed(message: Any, records: list[Any]) -> None:
    """A bulk batch message (streams.bulk) is stored: its last record counts as read."""
    last = records[-1] if records else None
    if last is not None:
        PROGRESS.processed(message.tp, last.offset, last.timestamp)
