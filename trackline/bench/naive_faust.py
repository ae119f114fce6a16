"""Contender: the Faust agent a team writes first. One agent, ``faust.Record`` values,
a rocksdb table write per event (a scan count per tracking number)."""

from __future__ import annotations

import json
import sys
import time

import faust

from models import topics


class TrackerEvent(faust.Record, serializer="json"):
    id: str
    object: str
    description: str
    created_at: str
    result: dict


def main(bootstrap: str, expected: int, out: str, datadir: str, partitions: int) -> None:
    app = faust.App("bench-naive-faust", broker=f"kafka://{bootstrap}", store="rocksdb://", datadir=datadir,
                    topic_partitions=partitions, broker_rebalance_timeout=5.0, broker_session_timeout=10.0,
                    broker_heartbeat_interval=1.0, consumer_auto_offset_reset="earliest", web_enabled=False,
                    recovery_consistency_check=False)
    scans = app.topic(topics.CARRIER_SCANS_RAW, key_type=str, value_type=TrackerEvent)
    counts = app.Table("scan-counts", default=int, partitions=partitions)
    progress = {"first": 0.0, "seen": 0}

    @app.agent(scans)
    async def count_scans(stream: faust.StreamT) -> None:
        async for event in stream:
            if not progress["seen"]:
                progress["first"] = time.perf_counter()
            counts[event.result["tracking_code"]] += 1
            progress["seen"] += 1
            if progress["seen"] == expected:
                seconds = time.perf_counter() - progress["first"]
                with open(out, "w") as f:
                    json.dump({"events": expected, "seconds": seconds}, f)

    worker = faust.Worker(app, loglevel="warn", quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]))
