"""Recovery time: how long until a worker processes its first event, with a million orders stored.

The orders changelog is seeded directly (running a million orders through the pipeline takes
half an hour): each record is a stored in-transit order, its next deadline two days ahead.
Then:

- fresh node: a worker with an empty disk restores every partition from the changelog and
  rebuilds its deadline index;
- warm restart: the same worker stopped and started again on its own RocksDB, which replays
  only the changelog's tail (here: the orders written since it stopped).

Each figure is the time from starting the worker process to the notification command of an
order placed right after the start: the first event it could process. The embedded broker
(memory-only) holds the changelog in memory; on Kafka the restore reads from disk.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from broker import clients
from broker.embedded import EmbeddedBroker, free_port
from models import topics
from models.codec import replace
from models.routing import partition_for

CHANGELOG = "trackline-orders-changelog"
TAIL = 10_000  # orders written between the stop and the warm restart


def seeded_state(now: datetime) -> bytes:
    from streams import order_store
    from trackline.bench.deadlines import template_state

    state = order_store.decode(template_state(now))
    return order_store.encode(replace(state, next_deadline=now + timedelta(days=2)))


def seed(bootstrap: str, first: int, count: int, partitions: int, template: bytes) -> float:
    producer = clients.producer(bootstrap, **{"linger.ms": 50, "batch.size": 1_000_000})
    started = time.perf_counter()
    for n in range(first, first + count):
        order_id = f"ORD-{n:010d}"
        value = template.replace(b"ORD-XXXXXXXXXX", order_id.encode())
        while True:
            try:
                producer.produce(CHANGELOG, key=order_id.encode(), value=value,
                                 partition=partition_for(order_id, partitions))
                break
            except BufferError:
                producer.poll(0.1)
        if n % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(300) == 0, "the broker did not take the seeded changelog"
    return time.perf_counter() - started


def first_event_seconds(bootstrap: str, data_dir: Path, partitions: int, logs: Path, tag: str) -> float:
    """Start a worker, place one order at once, return the seconds until its first command."""
    from confluent_kafka import Consumer, TopicPartition

    from trackline.bench import _stop

    watch = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-recovery-{tag}",
                      "enable.auto.commit": False})
    ends = [watch.get_watermark_offsets(TopicPartition(topics.NOTIFICATIONS, p), timeout=10)[1]
            for p in range(partitions)]
    watch.assign([TopicPartition(topics.NOTIFICATIONS, p, ends[p]) for p in range(partitions)])
    started = time.monotonic()
    worker = subprocess.Popen(
        [sys.executable, "-m", "trackline", "worker", "--kafka", bootstrap, "--data-dir", str(data_dir),
         "--partitions", str(partitions), "--web-port", str(free_port()), "--log-level", "info"],
        stdout=open(logs / f"worker-recovery-{tag}.log", "ab"), stderr=subprocess.STDOUT)
    now = datetime.now(UTC)
    order_id = f"ORD-RECOVERY-{tag}"
    placed = {"type": "order_placed", "event_id": f"{order_id}-placed", "order_id": order_id,
              "occurred_at": now.isoformat(), "customer_id": "CUST-R", "seller_id": "S", "fulfillment_center": "FC-A",
              "service_level": "standard", "promised_delivery_date": (now + timedelta(days=4)).date().isoformat(),
              "ship_by": (now + timedelta(days=1)).isoformat(), "items": [{"sku": "SKU-1", "quantity": 1}]}
    producer = clients.producer(bootstrap)
    producer.produce(topics.FC_EVENTS, key=order_id.encode(), value=orjson.dumps(placed))
    producer.flush(30)
    try:
        while time.monotonic() - started < 1800:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}; see {logs}")
            for message in watch.consume(1000, timeout=0.5):
                if not message.error() and message.key() == order_id.encode():
                    return time.monotonic() - started
        raise RuntimeError("no command within 30 minutes")
    finally:
        watch.close()
        _stop(worker)


def run(orders: int, partitions: int, workdir: Path, logs: Path) -> dict:
    now = datetime.now(UTC)
    template = seeded_state(now)
    with EmbeddedBroker(log_path=logs / "broker-recovery.log") as broker:
        clients.create_topics(broker.bootstrap, partitions)
        clients.create_topics(broker.bootstrap, partitions, names=[CHANGELOG])
        seeding = seed(broker.bootstrap, 0, orders, partitions, template)
        data = workdir / "recovery-worker"
        fresh = first_event_seconds(broker.bootstrap, data, partitions, logs, "fresh")
        seed(broker.bootstrap, orders, TAIL, partitions, template)  # written while it was down
        warm = first_event_seconds(broker.bootstrap, data, partitions, logs, "warm")
    return {"orders": orders, "stored_bytes_per_order": len(template), "seed_seconds": seeding,
            "fresh_node_seconds": fresh, "warm_restart_seconds": warm, "warm_tail_orders": TAIL}
