"""The sink alone: rows/s into ClickHouse (chDB, with the typed tables' views) and history lag.

Run as ``python -m trackline.bench.sink <bootstrap> <rows> <lag rate> <dir> <result.json>``
(its own process: chDB holds one engine path per process).

1. Throughput: ``rows`` history rows wait in ``trackline.history`` (envelopes of 1,000, as
   the worker writes them); the sink drains them; rows / seconds from first to last insert.
2. Lag: rows produced at ``lag rate`` rows/s for 10 s, each stamped with its produce time
   as ``ingested_at``; lag = ``written_at`` (set by ClickHouse at insert, when the row becomes
   queryable) minus that stamp, p50 and p99 over all rows.
3. Baseline: the same number of rows, the same JSON, inserted with clickhouse-connect alone
   (``sinks.clickhouse.insert_history``, 10,000-row blocks, the same views) in the same process:
   what the sink's reading, batching and committing cost on top of the insert itself.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from broker import clients
from models import topics
from models.routing import partition_for

ENVELOPE = 1000
KINDS = ["event", "event", "event", "transition", "notification", "shipment"]


def envelope(start: int, count: int, stamp: datetime, prefix: str = "bench") -> tuple[bytes, bytes]:
    order = f"ORD-S{start // 7:08d}"
    rows = [{"record_id": f"{prefix}-{n}", "record_type": KINDS[n % len(KINDS)], "order_id": order,
             "package_id": f"{order}-P1", "event_id": f"evt-{n}", "source": "easypost", "carrier": "ups",
             "tracking_number": f"1Z{n:016d}", "status": "in_transit", "previous_status": "", "raw_code": "IT",
             "detail": "Arrived at facility", "occurred_at": stamp.isoformat(), "ingested_at": stamp.isoformat(),
             "attributes": {"seller_id": "SELLER-001", "service_level": "standard"}}
            for n in range(start, start + count)]
    return order.encode(), orjson.dumps(rows)


def produce(bootstrap: str, first: int, rows: int, partitions: int, rate: float | None = None) -> None:
    producer = clients.producer(bootstrap, **{"queue.buffering.max.messages": 100_000})
    started = time.perf_counter()
    for n in range(first, first + rows, ENVELOPE):
        if rate:
            ahead = (n - first) / rate - (time.perf_counter() - started)
            if ahead > 0:
                time.sleep(ahead)
        key, value = envelope(n, min(ENVELOPE, first + rows - n), datetime.now(UTC))
        producer.produce(topics.HISTORY, key=key, value=value, partition=partition_for(key.decode(), partitions))
        producer.poll(0)
    producer.flush(60)


def main() -> None:
    from sinks.clickhouse import HistorySink

    bootstrap, rows, lag_rate, directory, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), \
        Path(sys.argv[4]), Path(sys.argv[5])
    partitions = 4
    clients.create_topics(bootstrap, partitions)
    produce(bootstrap, 0, rows, partitions)
    sink = HistorySink(bootstrap, f"chdb://{directory / 'clickhouse'}")
    clients_ready = threading.Event()
    captured: dict = {}

    def keep(client, lock) -> None:  # type: ignore[no-untyped-def]
        captured["client"], captured["lock"] = client, lock
        clients_ready.set()

    sink.on_connected = keep
    runner = threading.Thread(target=sink.run, daemon=True)
    runner.start()
    clients_ready.wait(60)
    client, lock = captured["client"], captured["lock"]

    def written() -> tuple[int, float, float]:
        with lock:
            n, first, last = client.query(
                "SELECT count(), toUnixTimestamp64Milli(min(written_at)), toUnixTimestamp64Milli(max(written_at)) "
                "FROM history WHERE record_id LIKE 'bench-%'").result_rows[0]
        return int(n), first / 1000, last / 1000

    deadline = time.monotonic() + 600
    while written()[0] < rows and time.monotonic() < deadline:
        time.sleep(0.5)
    count, first, last = written()
    batches_before = batch_buckets()
    lag_rows = int(lag_rate * 10)
    produce(bootstrap, rows, lag_rows, partitions, rate=lag_rate)
    while written()[0] < rows + lag_rows and time.monotonic() < deadline:
        time.sleep(0.5)
    with lock:
        p50, p99 = client.query(
            "SELECT quantileExact(0.5)(lag), quantileExact(0.99)(lag) FROM (SELECT "
            "dateDiff('millisecond', ingested_at, written_at) AS lag FROM history "
            f"WHERE record_id LIKE 'bench-%' AND toUInt64(substring(record_id, 7)) >= {rows})").result_rows[0]
    batch_p50, batch_p99, batch_max = batch_quantiles(batches_before, batch_buckets())
    sink.stopping.set()
    runner.join(30)
    bare = bare_insert(client, lock, rows)
    out.write_text(json.dumps({"rows": count, "seconds": max(last - first, 1e-3), "rows_per_second":
                               count / max(last - first, 1e-3), "lag_rate": lag_rate, "lag_p50_ms": p50,
                               "lag_p99_ms": p99, "bare_insert_rows_per_second": bare,
                               # How long the sink's batches took in the lag phase (read, insert, commit):
                               # upper bounds of the histogram buckets they fell in.
                               "lag_phase_batch_seconds": {"p50": batch_p50, "p99": batch_p99, "max": batch_max}}))


def batch_buckets() -> list[tuple[float, float]]:
    """The sink's ``trackline_batch_seconds`` buckets (upper bound, cumulative count) in this process."""
    from prometheus_client import REGISTRY

    return [(float(sample.labels["le"]), sample.value) for family in REGISTRY.collect()
            for sample in family.samples
            if sample.name == "trackline_batch_seconds_bucket" and sample.labels.get("stage") == "sink"]


def batch_quantiles(before: list[tuple[float, float]], after: list[tuple[float, float]]) -> tuple[float, ...]:
    counts = dict(before)
    delta = [(bound, count - counts.get(bound, 0.0)) for bound, count in after]
    total = delta[-1][1] if delta else 0.0
    if not total:
        return (0.0, 0.0, 0.0)

    def quantile(q: float) -> float:
        return next(bound for bound, count in delta if count >= q * total)

    return quantile(0.5), quantile(0.99), quantile(1.0)


def bare_insert(client, lock, rows: int) -> float:  # type: ignore[no-untyped-def]
    """Rows/s of clickhouse-connect inserting the same documents itself, 10,000 rows a block."""
    from sinks.clickhouse import insert_history

    stamp = datetime.now(UTC)
    blocks = []
    for n in range(0, rows, 10_000):
        parts = [envelope(m, min(ENVELOPE, rows - m), stamp, prefix="bare")[1][1:-1]
                 for m in range(n, min(n + 10_000, rows), ENVELOPE)]
        blocks.append(b"[" + b",".join(parts) + b"]")
    with lock:
        started = time.perf_counter()
        for block in blocks:
            insert_history(client, block)
        return rows / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
