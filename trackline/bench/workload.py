"""The benchmark's fixed, seeded workload: orders announced, then their carrier scans.

Each order ships one package with ``scans_per_order`` EasyPost webhooks: label created,
in-transit scans, out for delivery, delivered. As EasyPost sends ``tracker.updated``, each
webhook carries the package's whole history so far (``full_history``), so parsing and the
duplicate scans cost what they cost in production; the older single-scan workload (each
webhook its one new detail) stays as a second line for comparison. One message is one input
record for every contender.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import orjson

from models import topics

EASYPOST = [(topics.SOURCE_HEADER, b"easypost")]
# Each journey lasts four hours and ends an hour before the bench starts, read at wall-clock
# ingest time: no scan is dated in the future (future_tolerance_minutes), none is older than the
# stale-notice bound, and every deadline (pickup, stale, promise, end of the out-for-delivery
# day) lies ahead, so the benchmark measures the steady path and yields a known count of
# commands (time-driven detection has its own benchmark: bench/deadlines.py).
SHIPPED_AFTER, FIRST_SCAN_AFTER, DELIVERED_AFTER = timedelta(minutes=30), timedelta(hours=1), timedelta(hours=4)
OUT_FOR_DELIVERY_BEFORE_DELIVERED = timedelta(minutes=10)


def _start() -> datetime:
    # Out for delivery and delivered fall on one local day: the customers' zone puts the
    # delivery at 08:00 (customer_zone).
    return datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)


def scan_times(scans_per_order: int) -> list[datetime]:
    """Label scan an hour after the start, in-transit scans evenly to out for delivery ten
    minutes before the delivery, four hours after the start, whatever the count."""
    first, ofd = START + FIRST_SCAN_AFTER, START + DELIVERED_AFTER - OUT_FOR_DELIVERY_BEFORE_DELIVERED
    every = (ofd - first) / max(1, scans_per_order - 2)
    return [first + every * step for step in range(scans_per_order - 1)] + [START + DELIVERED_AFTER]


def customer_zone(delivered: datetime) -> str:
    """A fixed-offset zone in which the delivery is at 08:00 local: the out-for-delivery update
    is news until the end of its local day (the notification policy suppresses it after), so a
    run that goes on past midnight UTC still gets every command it counts."""
    offset = (8 - delivered.hour) % 24
    if offset > 14:  # the Etc zones run from UTC-12 to UTC+14
        offset -= 24
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"  # Etc/GMT-10 is ten hours ahead of UTC


START = _start()
ZONE = customer_zone(START + DELIVERED_AFTER)
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
             "fulfillment_center": "FC-A", "service_level": "standard", "delivery_time_zone": ZONE,
             "promised_delivery_date": (START + timedelta(days=5)).date().isoformat(),
             "ship_by": _iso(START + timedelta(days=3)), "items": [{"sku": "SKU-00001", "quantity": 1}]},
            {"type": "package_shipped", "event_id": f"{order_id}-shipped", "order_id": order_id,
             "occurred_at": _iso(START + SHIPPED_AFTER), "package_id": f"{order_id}-P1",
             "carrier": "UPS", "tracking_number": tracking_number(prefix, n)},
        ):
            out.append((topics.FC_EVENTS, order_id.encode(), orjson.dumps(body), []))
    return out


def tracking_number(prefix: str, n: int) -> str:
    return f"1Z{prefix}{n:014d}"


def scan_messages(first: int, count: int, scans_per_order: int, seed: int, prefix: str = "B",
                  full_history: bool = True) -> list[Message]:
    """Scans of orders first..first+count, interleaved across orders, each order's in time order."""
    rng = random.Random(seed)
    statuses = (["pre_transit"] + ["in_transit"] * (scans_per_order - 3) + ["out_for_delivery", "delivered"])
    per_order = []
    times = scan_times(scans_per_order)
    for n in range(first, first + count):
        tracking = tracking_number(prefix, n)
        webhooks = []
        details: list[dict] = []
        for step, (status, moment) in enumerate(zip(statuses, times, strict=True)):
            when = _iso(moment)
            detail = {"object": "TrackingDetail", "status": status, "status_detail": None,
                      "message": status.replace("_", " "), "datetime": when,
                      "tracking_location": {"city": "Reno", "state": "NV", "country": "US"}}
            details = [*details, detail] if full_history else [detail]
            event = {"id": f"evt_{prefix}{n}_{step}", "object": "Event", "description": "tracker.updated",
                     "created_at": when, "result": {"object": "Tracker", "tracking_code": tracking,
                                                    "carrier": "UPS", "status": status,
                                                    "tracking_details": details}}
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
