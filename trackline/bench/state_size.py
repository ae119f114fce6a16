"""State size over months of event time: with retention, the worker's stores stop growing.

A steady stream of orders (placed, shipped an hour later, in transit the next day, out for
delivery and delivered the day after) is produced with each message's event time as its
broker timestamp, as a backlog of several months ending now. The worker reads it; deadlines
(feedback, retention) wait for the backlog to be read, as every deadline does (the watermark,
models/watermark.py), then fire. The bench then reads the key count and the size on disk of
the worker's local ``orders`` and ``tracking`` stores (RocksDB), for histories of different
lengths at the same rate: flat means the same figures whatever the length. The embedded broker
(memory-only) never compacts changelogs, so the local stores are the measure here; on Kafka the
compacted changelogs follow them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import orjson

from broker import clients
from broker.embedded import EmbeddedBroker, free_port
from models import topics

DAY = 86_400.0


def journey(n: int, placed: datetime) -> list[tuple[float, str, bytes, bytes, list[tuple[str, bytes]]]]:
    order_id, number = f"ORD-M{n:08d}", f"1ZMONTH{n:09d}"
    fc = [{"type": "order_placed", "event_id": f"{order_id}-placed", "order_id": order_id,
           "occurred_at": placed.isoformat(), "customer_id": f"CUST-{n % 5000:05d}", "seller_id": "S",
           "fulfillment_center": "FC-A", "service_level": "standard",
           "promised_delivery_date": (placed + timedelta(days=4)).date().isoformat(),
           "ship_by": (placed + timedelta(hours=12)).isoformat(), "items": [{"sku": "SKU-1", "quantity": 1}]},
          {"type": "package_shipped", "event_id": f"{order_id}-shipped", "order_id": order_id,
           "occurred_at": (placed + timedelta(hours=1)).isoformat(), "package_id": f"{order_id}-P1",
           "carrier": "UPS", "tracking_number": number}]
    out: list[tuple[float, str, bytes, bytes, list[tuple[str, bytes]]]] = [
        ((placed + timedelta(hours=i)).timestamp(), topics.FC_EVENTS, order_id.encode(), orjson.dumps(e), [])
        for i, e in enumerate(fc)]
    for status, days in (("in_transit", 1), ("out_for_delivery", 2), ("delivered", 2.3)):
        at = placed + timedelta(days=days)
        scan = {"carrier": "UPS", "tracking_number": number,
                "events": [{"status": status, "occurred_at": at.isoformat(), "location": "Memphis, TN"}]}
        out.append((at.timestamp(), topics.CARRIER_SCANS_RAW, number.encode(), orjson.dumps(scan),
                    [(topics.SOURCE_HEADER, b"generic")]))
    return out


def store(data_dir: Path, table: str) -> tuple[int, int]:
    """Keys and bytes on disk of a table's local stores (every partition)."""
    from rocksdict import AccessType, Options, Rdict

    keys = size = 0
    for path in (data_dir / "worker" / "v1" / "tables").glob(f"{table}-*.db"):
        size += sum(f.stat().st_size for f in path.iterdir() if f.is_file())
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        # raw_mode: every key is bytes (rocksdict's stub types keys() for every mode).
        raw_keys = cast("Iterable[bytes]", db.keys())
        # Not trackline's bookkeeping keys (b"\x00...") nor Faust's changelog offset.
        keys += sum(1 for k in raw_keys if not k.startswith(b"\x00") and k != b"__faust\x00offset__")
        db.close()
    return keys, size


def run(histories: tuple[int, ...], orders_per_day: int, partitions: int, workdir: Path,
        logs: Path) -> dict[str, Any]:
    """For each history length (days of event time ending now, same order rate): the stores once
    the worker has read it all and its deadline ticks have settled. With retention the figures
    are the same whatever the length; without it they would grow with it."""
    samples = [_settled(days, orders_per_day, partitions, workdir, logs) for days in histories]
    return {"orders_per_day": orders_per_day, "samples": samples}


def _settled(days: int, orders_per_day: int, partitions: int, workdir: Path, logs: Path) -> dict[str, Any]:
    start = datetime.now(UTC) - timedelta(days=days + 3)
    stream = sorted((m for n in range(days * orders_per_day)
                     for m in journey(n, start + timedelta(seconds=n * DAY / orders_per_day))), key=lambda m: m[0])
    stream = [m for m in stream if m[0] < time.time()]
    total = len({m[2] for m in stream if m[1] == topics.FC_EVENTS})
    data = workdir / f"state-size-{days}"
    with EmbeddedBroker(log_path=logs / f"broker-state-size-{days}.log") as broker:
        clients.create_topics(broker.bootstrap, partitions)
        producer = clients.producer(broker.bootstrap)
        for at, topic, key, value, headers in stream:  # the whole history as a backlog
            while True:
                try:
                    producer.produce(topic, key=key, value=value, headers=headers, timestamp=int(at * 1000))
                    break
                except BufferError:
                    producer.poll(0.1)
        assert producer.flush(300) == 0
        started = time.monotonic()
        worker = subprocess.Popen(
            [sys.executable, "-m", "trackline", "worker", "--kafka", broker.bootstrap, "--data-dir", str(data),
             "--partitions", str(partitions), "--web-port", str(free_port()), "--log-level", "warn",
             "--tick-interval", "1"],
            stdout=open(logs / f"worker-state-size-{days}.log", "ab"), stderr=subprocess.STDOUT)
        try:
            while (_orders_read(broker.bootstrap) or 0) < total:
                if time.monotonic() - started > 1800 or worker.poll() is not None:
                    raise RuntimeError(f"the worker did not read the history; see {logs}")
                time.sleep(2)
            # The deadlines wait for the backlog, then fire at "now": first every feedback request
            # due (a signal from the pipeline, not the figure measured), then the removals a tick
            # round or two later; then until the stores stop changing.
            due = sum(1 for n in range(days * orders_per_day)
                      if start + timedelta(seconds=n * DAY / orders_per_day, days=2.3, hours=72)
                      < datetime.now(UTC))
            _feedback_requests(broker.bootstrap, partitions, due, started + 1800)
            seen: list[tuple[int, int]] = []
            while len(seen) < 4 or len(set(seen[-4:])) > 1:
                time.sleep(5)
                orders = store(data, "orders")
                tracking = store(data, "tracking")
                seen.append((orders[0], tracking[0]))
        finally:
            worker.terminate()
            worker.wait(120)
    sample = {"days": days, "orders_in_history": total, "orders_keys": orders[0], "orders_bytes": orders[1],
              "tracking_keys": tracking[0], "tracking_bytes": tracking[1]}
    print(f"  {days:>4} days, {total:>6,} orders: orders store {orders[0]:>6,} keys {orders[1] / 1e6:6.1f} MB, "
          f"tracking store {tracking[0]:>6,} keys {tracking[1] / 1e6:6.1f} MB", flush=True)
    return sample


def _feedback_requests(bootstrap: str, partitions: int, expected: int, until: float) -> None:
    from confluent_kafka import TopicPartition

    consumer = clients.consumer(bootstrap, f"bench-state-size-{time.monotonic_ns()}", log_level=0)
    consumer.assign([TopicPartition(topics.NOTIFICATIONS, p, 0) for p in range(partitions)])
    found = 0
    try:
        while found < expected:
            if time.monotonic() > until:
                raise RuntimeError(f"only {found} of {expected} feedback requests")
            found += sum(1 for m in consumer.consume(10000, timeout=1.0)
                         if not m.error() and b'"feedback_request"' in (m.value() or b""))
    finally:
        consumer.close()


def _orders_read(bootstrap: str) -> int | None:
    """Orders whose two fulfillment events the worker has read (its committed offsets): the stream
    is in event time, so this says how far in event time the worker stands."""
    try:
        committed = clients.committed_offsets(bootstrap, "trackline")
    except Exception:  # the group not formed yet
        return None
    return sum(max(offset, 0) for (topic, _), offset in committed.items() if topic == topics.FC_EVENTS) // 2
