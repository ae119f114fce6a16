"""The ingest-time watermark: the "now" every deadline rule is judged at.

A deadline is missed only if the events that could have met it have been read. The
watermark is the latest ingest time T such that every record ingested at or before T, on
every input partition, has been processed:

- a partition with records left to read contributes the ingest time of the last record
  processed (none processed yet: no watermark at all, so no deadline fires);
- a partition read to its end contributes the wall clock.

"Read to its end" needs three things: nothing handed to the agent is still unprocessed,
the consumer's position is at the partition's end, and nothing arrived for a moment. The
last one covers the embedded broker, which reports a partition's end up to one record
batch short: a batch split over two fetches is delivered again within a fetch wait.
With live traffic every partition keeps arriving, so the watermark is the ingest time of
the newest record processed everywhere: the wall clock less the pipeline's latency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

QUIET_SECONDS = 1.0  # several fetch waits (50 ms) with nothing new: the partition is read to its end


@dataclass
class PartitionProgress:
    last_ingested_at: datetime | None = None  # of the last record processed
    processed_end: int | None = None  # offset after the last record processed
    delivered_end: int | None = None  # offset after the last record handed to the agent
    position: int | None = None  # the consumer's next fetch offset
    end: int | None = None  # the partition's end as the broker reports it
    quiet_seconds: float = 0.0  # since records were last handed over (or since assignment)


def caught_up(progress: PartitionProgress, quiet_seconds: float = QUIET_SECONDS) -> bool:
    if progress.delivered_end is not None and (progress.processed_end or -1) < progress.delivered_end:
        return False  # handed to the agent, not processed yet
    if progress.position is None or progress.end is None:
        return False  # no fetch answered yet: the end is unknown
    return progress.position >= progress.end and progress.quiet_seconds >= quiet_seconds


def newest_record(partitions: list[PartitionProgress]) -> datetime | None:
    """The newest ingest time processed on any partition: "now" for a replay of history
    (``watermark_clock = "records"``), where the wall clock is days after every record."""
    return max((p.last_ingested_at for p in partitions if p.last_ingested_at is not None), default=None)


def ingest_watermark(partitions: list[PartitionProgress], wall: datetime,
                     quiet_seconds: float = QUIET_SECONDS) -> datetime | None:
    """The watermark over ``partitions`` at wall-clock time ``wall``; None while unknown."""
    moments: list[datetime] = []
    for progress in partitions:
        if caught_up(progress, quiet_seconds):
            moments.append(wall)
        elif progress.last_ingested_at is None:
            return None
        else:
            moments.append(min(progress.last_ingested_at, wall))
    return min(moments, default=wall)
