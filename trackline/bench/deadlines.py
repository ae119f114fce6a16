"""Time-driven detection at scale: the deadline timer's cost per tick and the worker's memory
with 10k, 100k and 1M open shipments in the rocksdb store.

Run as ``python -m trackline.bench.deadlines <open shipments> <dir> <result.json>``, one
process per size so each RSS figure stands alone. The process holds what a worker holds
for this: the orders table in rocksdb (Faust's own store options) with one realistic
in-transit order per shipment, and the deadline index rebuilt from that table, as after a
rebalance. Deadlines are spread over the next ten days, so about n / 864,000 orders fall
due each second; the timer runs the worker's own code (``PartitionDeadlines.due``, ``ticks_for``
and ``acknowledge`` once the ticks are sent) every ``TICK`` seconds of simulated clock.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

PARTITIONS = 4
TICK = 5.0  # the worker's tick interval
TICKS = 120  # ten minutes of simulated clock
FIXED_DUE = 100
SPREAD = 10 * 86_400  # deadlines fall over the next ten days


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def template_state(now: datetime) -> bytes:
    """One in-transit order as the worker stores it: a package, six scans, two milestones."""
    from models.events import PackageStatus
    from models.state import OrderState, OrderStatus, PackageState, TimelineEntry
    from streams.order_store import encode

    scans = [TimelineEntry(status=PackageStatus.in_transit, raw_code="in_transit/arrived_at_facility",
                           message="Arrived at facility", location="Memphis, TN",
                           occurred_at=now - timedelta(hours=6 * i)) for i in range(6)]
    package = PackageState(package_id="ORD-XXXXXXXXXX-P1", carrier="ups", tracking_number="1Z0000000000000000",
                           status=PackageStatus.in_transit, status_at=now, shipped_at=now - timedelta(days=1),
                           accepted_at=now - timedelta(days=1), last_scan_at=now, timeline=scans,
                           estimated_delivery=date.today() + timedelta(days=3), estimate_source="promise")
    state = OrderState(order_id="ORD-XXXXXXXXXX", status=OrderStatus.shipped, customer_id="CUST-000001",
                       seller_id="SELLER-001", fulfillment_center="FC-A", service_level="standard",
                       promised_delivery_date=date.today() + timedelta(days=3), ship_by=now,
                       ordered_skus=["SKU-00001"], placed_at=now - timedelta(days=1),
                       packages={"ORD-XXXXXXXXXX-P1": package}, next_deadline=now,
                       notified=[":order_confirmed", ":estimate_set", "ORD-XXXXXXXXXX-P1:shipped"],
                       seen_event_ids=[f"evt_{i:020d}" for i in range(8)])
    return encode(state)


def run(open_shipments: int, directory: Path) -> dict:
    import random

    from faust.stores.rocksdb import RocksDBOptions
    from rocksdict import WriteBatch

    from models.deadlines import epoch_seconds
    from models.routing import partition_for
    from streams.app import store_options
    from streams.clock import PartitionDeadlines, ticks_for

    baseline = rss_mb()
    now = datetime.now(UTC).replace(microsecond=0)
    template = template_state(now)
    body = template[template.index(b"|"):]
    options = RocksDBOptions(**store_options())
    dbs = {p: options.open(directory / f"orders-{p}.db") for p in range(PARTITIONS)}
    rng = random.Random(1)
    started = time.perf_counter()
    batches = {p: WriteBatch(raw_mode=True) for p in dbs}
    for n in range(open_shipments):
        order_id = f"ORD-{n:010d}"
        due_at = epoch_seconds(now) + rng.randrange(1, SPREAD)
        partition = partition_for(order_id, PARTITIONS)
        batches[partition].put(order_id.encode(), b"%d" % due_at + body.replace(b"ORD-XXXXXXXXXX", order_id.encode()))
        if n % 20_000 == 19_999 or n == open_shipments - 1:
            for p, batch in batches.items():
                dbs[p].write(batch)
            batches = {p: WriteBatch(raw_mode=True) for p in dbs}
    write_seconds = time.perf_counter() - started

    deadlines = PartitionDeadlines()
    started = time.perf_counter()
    for partition, db in dbs.items():
        deadlines.rebuild(partition, db.items())
    rebuild_seconds = time.perf_counter() - started
    gc.collect()

    clock = now
    costs, due_counts = [], []
    lateness: list[int] = []
    for _ in range(TICKS):
        clock += timedelta(seconds=TICK)
        started = time.perf_counter()
        due = deadlines.due(int(clock.timestamp()))
        ticks = ticks_for(due, clock)
        deadlines.acknowledge(due)
        costs.append(time.perf_counter() - started)
        due_counts.append(len(ticks))
        lateness.extend(int(clock.timestamp()) - deadline for _, _, deadline in due)
    # The same timer with a fixed load, 100 orders due at every tick: the cost must not
    # depend on how many shipments are open.
    fixed_costs = []
    for _ in range(20):
        clock += timedelta(seconds=TICK)
        for k in range(FIXED_DUE):
            order_id = f"ORD-DUE-{k:05d}"
            deadlines.schedule(partition_for(order_id, PARTITIONS), order_id, clock - timedelta(seconds=1))
        started = time.perf_counter()
        due = deadlines.due(int(clock.timestamp()))
        ticks = ticks_for(due, clock)
        deadlines.acknowledge(due)
        fixed_costs.append(time.perf_counter() - started)
        assert len(ticks) >= FIXED_DUE
    store_bytes = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
    return {
        "open_shipments": open_shipments,
        "indexed": len(deadlines) + sum(due_counts),
        "write_seconds": write_seconds,
        "rebuild_seconds": rebuild_seconds,
        "tick_ms_p50": statistics.median(costs) * 1000,
        "tick_ms_max": max(costs) * 1000,
        "core_share_percent": statistics.mean(costs) / TICK * 100,
        "due_per_tick": statistics.mean(due_counts),
        "tick_ms_with_100_due": statistics.median(fixed_costs) * 1000,
        "detection_after_deadline_s_max": max(lateness, default=0),
        "rss_mb": rss_mb(),
        "rss_baseline_mb": baseline,
        "store_mb": store_bytes / 2**20,
    }


def main() -> None:
    open_shipments, directory, out = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    directory.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(run(open_shipments, directory)))


if __name__ == "__main__":
    main()
