"""State size over months of event time: with retention, the worker's stores stop growing.

A steady stream of orders (placed, shipped an hour later, in transit the next day, delivered
the day after) is produced with each message's event time as its broker timestamp, so the
worker's watermark, and with it every deadline and retention tick, runs through months of
event time in a few minutes. After each stretch the bench reads the key count and the size on
disk of the worker's local ``orders`` and ``tracking`` stores (RocksDB). The embedded broker
(memory-only) never compacts changelogs, so the local stores are the measure here; on Kafka
the compacted changelogs follow them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
    out = [((placed + timedelta(hours=i)).timestamp(), topics.FC_EVENTS, order_id.encode(), orjson.dumps(e), [])
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
        keys += sum(1 for k in db.keys() if not k.startswith(b"\x00"))  # not trackline's bookkeeping keys
        db.close()
    return keys, size


def run(days: int, orders_per_day: int, partitions: int, workdir: Path, logs: Path, every: int = 15) -> dict[str, Any]:
    # The stream ends now: the watermark follows the backlog's event times while the worker reads
    # it (a caught-up partition counts as "now", models/watermark.py), and never jumps ahead.
    start = datetime.now(UTC) - timedelta(days=days + 3)
    stream = sorted((m for n in range(days * orders_per_day)
                     for m in journey(n, start + timedelta(seconds=n * DAY / orders_per_day))), key=lambda m: m[0])
    stream = [m for m in stream if m[0] < time.time()]
    data = workdir / "state-size-worker"
    samples: list[dict[str, Any]] = []
    with EmbeddedBroker(log_path=logs / "broker-state-size.log") as broker:
        clients.create_topics(broker.bootstrap, partitions)
        producer = clients.producer(broker.bootstrap)
        for at, topic, key, value, headers in stream:  # the whole backlog first
            while True:
                try:
                    producer.produce(topic, key=key, value=value, headers=headers, timestamp=int(at * 1000))
                    break
                except BufferError:
                    producer.poll(0.1)
        assert producer.flush(300) == 0
        worker = subprocess.Popen(
            [sys.executable, "-m", "trackline", "worker", "--kafka", broker.bootstrap, "--data-dir", str(data),
             "--partitions", str(partitions), "--web-port", str(free_port()), "--log-level", "warn",
             "--tick-interval", "0.5"],
            stdout=open(logs / "worker-state-size.log", "ab"), stderr=subprocess.STDOUT)
        try:
            # Sampled while the worker reads the backlog: the watermark is then the backlog's event
            # time. Once it has read everything, a last sample after the ticks at "now".
            total = len({m[2] for m in stream if m[1] == topics.FC_EVENTS})
            last_day = -every
            deadline = time.monotonic() + 1800
            while time.monotonic() < deadline:
                time.sleep(1)
                read = _orders_read(broker.bootstrap)
                if read is None:
                    continue
                finished = read >= total
                if finished:
                    time.sleep(10)
                day = read / orders_per_day
                if day - last_day < every and not finished:
                    continue
                last_day = day
                orders, orders_bytes = store(data, "orders")
                tracking, tracking_bytes = store(data, "tracking")
                samples.append({"day": round(day, 1), "orders_keys": orders, "orders_bytes": orders_bytes,
                                "tracking_keys": tracking, "tracking_bytes": tracking_bytes})
                print(f"  day {day:>5.1f}: orders store {orders:>7,} keys {orders_bytes / 1e6:6.1f} MB, "
                      f"tracking store {tracking:>7,} keys {tracking_bytes / 1e6:6.1f} MB", flush=True)
                if finished:
                    break
        finally:
            worker.terminate()
            worker.wait(120)
    return {"days": days, "orders_per_day": orders_per_day, "samples": samples}


def _orders_read(bootstrap: str) -> int | None:
    """Orders whose two fulfillment events the worker has read (its committed offsets): the stream
    is in event time, so this says how far in event time the worker stands."""
    from confluent_kafka import ConsumerGroupTopicPartitions
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        (future,) = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("trackline")]).values()
        committed = [tp for tp in future.result(timeout=10).topic_partitions if tp.topic == topics.FC_EVENTS]
    except Exception:  # the group not formed yet
        return None
    return sum(max(tp.offset, 0) for tp in committed) // 2
