"""The benchmark's fixed, seeded workload: orders announced, then their carrier scans.

Each order ships one package with ``scans_per_order`` EasyPost webhooks: label created,
in-transit scans, out for delivery, delivered. Each webhook carries the one new tracking
detail it reports, so one message is one scan for every contender.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import orjson

from models import topics

EASYPOST = [(topics.SOURCE_HEADER, b"easypost")]
# Two days ago: every delay deadline of these journeys lies ahead, so the benchmark
# measures the steady path (time-driven detection has its own benchmark: bench/deadlines.py).
START = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
Message = tuple[str, bytes, bytes, list]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def order_messages(first: int, count: int, prefix: str = "B") -> list[Message]:
    out: list[Message] = []
    for n in range(first, first + count):
        order_id = f"ORD-{prefix}{n:07d}"
        for body in (
            {"type": "order_placed", "event_id": f"{order_id}-placed", "order_id": order_id,
             "occurred_at": _iso(START), "customer_id": f"CUST-{n % 50000:06d}", "seller_id": "SELLER-001",
             "fulfillment_center": "FC-A", "service_level": "standard",
             "promised_delivery_date": (START + timedelta(days=5)).date().isoformat(),
             "ship_by": _iso(START + timedelta(days=3)), "items": [{"sku": "SKU-00001", "quantity": 1}]},
            {"type": "package_shipped", "event_id": f"{order_id}-shipped", "order_id": order_id,
             "occurred_at": _iso(START + timedelta(hours=3)), "package_id": f"{order_id}-P1",
             "carrier": "UPS", "tracking_number": tracking_number(prefix, n)},
        ):
            out.append((topics.FC_EVENTS, order_id.encode(), orjson.dumps(body), []))
    return out


def tracking_number(prefix: str, n: int) -> str:
    return f"1Z{prefix}{n:014d}"


def scan_messages(first: int, count: int, scans_per_order: int, seed: int, prefix: str = "B") -> list[Message]:
    """Scans of orders first..first+count, interleaved across orders, each order's in time order."""
    rng = random.Random(seed)
    statuses = (["pre_transit"] + ["in_transit"] * (scans_per_order - 3) + ["out_for_delivery", "delivered"])
    per_order = []
    for n in range(first, first + count):
        tracking = tracking_number(prefix, n)
        webhooks = []
        for step, status in enumerate(statuses):
            when = _iso(START + timedelta(hours=4 + 6 * step))
            detail = {"object": "TrackingDetail", "status": status, "status_detail": None,
                      "message": status.replace("_", " "), "datetime": when,
                      "tracking_location": {"city": "Reno", "state": "NV", "country": "US"}}
            event = {"id": f"evt_{prefix}{n}_{step}", "object": "Event", "description": "tracker.updated",
                     "created_at": when, "result": {"object": "Tracker", "tracking_code": tracking,
                                                    "carrier": "UPS", "status": status,
                                                    "tracking_details": [detail]}}
            webhooks.append((topics.CARRIER_SCANS_RAW, tracking.encode(), orjson.dumps(event), EASYPOST))
        per_order.append(webhooks)
    # Interleave: a random order's next scan each time, as carriers' traffic arrives.
    out: list[Message] = []
    cursors = [0] * len(per_order)
    live = list(range(len(per_order)))
    while live:
        i = rng.randrange(len(live))
        order = live[i]
        out.append(per_order[order][cursors[order]])
        cursors[order] += 1
        if cursors[order] == len(per_order[order]):
            live[i] = live[-1]
            live.pop()
    return out
