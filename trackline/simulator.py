"""A seeded generator of realistic order traffic.

Orders are placed, shipped in one or two packages and scanned by carriers through
EasyPost, AfterShip and Shippo webhooks that carry the whole tracking history, as those
services send them. Like real traffic it includes webhook retries (duplicates), late webhooks
with an older history (out of order), scans that arrive before the fulfillment center
announced the shipment, and a few malformed payloads.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import orjson

from models import topics

CARRIERS = [("USPS", "9400{:018d}"), ("UPS", "1Z{:016d}"), ("FedEx", "{:012d}"), ("DHL", "{:010d}")]
SERVICE_LEVELS = ["same_day", "one_day", "two_day", "standard", "standard", "standard"]
CITIES = [("Reno", "NV"), ("Columbus", "OH"), ("Memphis", "TN"), ("Louisville", "KY"),
          ("Dallas", "TX"), ("Atlanta", "GA"), ("Ontario", "CA"), ("Allentown", "PA")]
# Which aggregator reports a package: most traffic through EasyPost, as in many shops.
SOURCES = ["easypost", "aftership", "shippo"]
SOURCE_WEIGHTS = [6, 3, 2]
AFTERSHIP_TAGS = {"pre_transit": "InfoReceived", "in_transit": "InTransit",
                  "out_for_delivery": "OutForDelivery", "delivered": "Delivered"}
SHIPPO_STATUSES = {"pre_transit": ("PRE_TRANSIT", "information_received"),
                   "in_transit": ("TRANSIT", "package_arrived"),
                   "out_for_delivery": ("TRANSIT", "out_for_delivery"), "delivered": ("DELIVERED", "delivered")}
# Simulated journeys run fast: one real second stands for this much carrier time.
SIM_SPEEDUP = 600


@dataclass(order=True)
class Outgoing:
    due: float  # seconds after the start
    seq: int
    topic: str = field(compare=False)
    key: bytes = field(compare=False)
    value: bytes = field(compare=False)
    headers: list[tuple[str, bytes]] = field(compare=False, default_factory=list)
    kind: str = field(compare=False, default="")


@dataclass
class TrafficMix:
    duplicate: float = 0.05
    out_of_order: float = 0.04
    scan_before_shipment: float = 0.05
    malformed: float = 0.01
    split_shipment: float = 0.2


class TrafficSimulator:
    def __init__(self, seed: int = 7, start: datetime | None = None, mix: TrafficMix | None = None,
                 scan_gap: tuple[float, float] = (0.5, 2.0)) -> None:
        self.random = random.Random(seed)
        self.start = start or datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)
        self.mix = mix or TrafficMix()
        self.scan_gap = scan_gap
        self._seq = 0
        self.orders = 0

    def order_script(self, at: float) -> list[Outgoing]:
        """Every message one order causes, each with the second it is due."""
        r = self.random
        self.orders += 1
        order_id = f"ORD-{self.orders:07d}-{r.randrange(16**4):04x}"
        placed = self._when(at)
        level = r.choice(SERVICE_LEVELS)
        days = {"same_day": 0, "one_day": 1, "two_day": 2}.get(level, 5)
        items = [{"sku": f"SKU-{r.randrange(1, 5000):05d}", "quantity": r.randint(1, 3)}
                 for _ in range(r.randint(1, 3))]
        out = [self._fc(at, order_id, {
            "type": "order_placed", "event_id": f"{order_id}-placed", "order_id": order_id,
            "occurred_at": _iso(placed), "customer_id": f"CUST-{r.randrange(1, 50000):06d}",
            "seller_id": f"SELLER-{r.randrange(1, 40):03d}", "fulfillment_center": f"FC-{r.choice('ABCDEF')}",
            "service_level": level, "promised_delivery_date": (placed + timedelta(days=days or 0)).date().isoformat(),
            "ship_by": _iso(placed + timedelta(hours=12)), "items": items})]
        split = len(items) > 1 and r.random() < self.mix.split_shipment
        groups = [items[:1], items[1:]] if split else [items]
        t = at + r.uniform(0.3, 1.0)
        for n, group in enumerate(groups):
            out.extend(self._package(order_id, n, group if split else [], t + n * r.uniform(0.2, 1.0)))
        if r.random() < self.mix.malformed:
            out.append(self._malformed(at + r.uniform(0, 3)))
        return out

    def _package(self, order_id: str, n: int, items: list[dict], shipped_at: float) -> list[Outgoing]:
        r = self.random
        carrier, pattern = r.choice(CARRIERS)
        source = r.choices(SOURCES, weights=SOURCE_WEIGHTS)[0]
        tracking = pattern.format(r.randrange(10**9, 10**10))
        package_id = f"{order_id}-P{n + 1}"
        shipped = self._fc(shipped_at, order_id, {
            "type": "package_shipped", "event_id": f"{package_id}-shipped", "order_id": order_id,
            "occurred_at": _iso(self._when(shipped_at)), "package_id": package_id,
            "carrier": carrier, "tracking_number": tracking, "service": "Priority",
            "skus": [i["sku"] for i in items]})
        out = [shipped]
        journey = [("pre_transit", "label_created", "Shipping label created")]
        journey += [("in_transit", "arrived_at_facility", "Arrived at facility")] * r.randint(1, 3)
        journey += [("out_for_delivery", "out_for_delivery", "Out for delivery"),
                    ("delivered", "arrived_at_destination", "Delivered, front door")]
        t = shipped_at + r.uniform(0.1, 0.4)
        if r.random() < self.mix.scan_before_shipment:
            t = shipped_at - r.uniform(0.1, 0.3)  # the carrier is faster than the warehouse
        details: list[dict] = []
        sends: list[Outgoing] = []
        for status, detail, message in journey:
            city, state = r.choice(CITIES)
            details.append({"object": "TrackingDetail", "status": status, "status_detail": detail,
                            "message": message, "datetime": _iso(self._when(t)), "source": carrier,
                            "tracking_location": {"object": "TrackingLocation", "city": city,
                                                  "state": state, "country": "US", "zip": None}})
            sends.append(self._webhook(t, carrier, tracking, status, list(details), source))
            t += r.uniform(*self.scan_gap)
        for i, send in enumerate(list(sends)):
            if r.random() < self.mix.duplicate:
                sends.append(self._retry(send, send.due + r.uniform(0.05, 1.0)))
            if i and r.random() < self.mix.out_of_order:
                sends.append(self._retry(sends[i - 1], send.due + r.uniform(0.05, 0.5)))
        return out + sends

    def _webhook(self, at: float, carrier: str, tracking: str, status: str, details: list[dict],
                 source: str = "easypost") -> Outgoing:
        if source == "aftership":
            return self._aftership(at, carrier, tracking, details)
        if source == "shippo":
            return self._shippo(at, carrier, tracking, details)
        when = self._when(at)
        event = {
            "id": f"evt_{self.random.getrandbits(64):016x}", "object": "Event",
            "description": "tracker.updated", "mode": "production",
            "created_at": _iso(when), "previous_attributes": {"status": "unknown"},
            "result": {"id": f"trk_{tracking[-10:]}", "object": "Tracker", "mode": "production",
                       "tracking_code": tracking, "carrier": carrier, "status": status,
                       "status_detail": details[-1]["status_detail"], "updated_at": _iso(when),
                       "est_delivery_date": _iso(self._when(at) + timedelta(days=2)),
                       "tracking_details": details}}
        return self._send(at, topics.CARRIER_SCANS_RAW, tracking.encode(), orjson.dumps(event),
                          [(topics.SOURCE_HEADER, b"easypost")], kind="scan")

    def _aftership(self, at: float, carrier: str, tracking: str, details: list[dict]) -> Outgoing:
        checkpoints = [{"slug": carrier.lower(), "checkpoint_time": d["datetime"], "tag": AFTERSHIP_TAGS[d["status"]],
                        "subtag": AFTERSHIP_TAGS[d["status"]] + "_001", "message": d["message"],
                        "city": d["tracking_location"]["city"], "state": d["tracking_location"]["state"],
                        "country_region": "USA", "raw_tag": d["status_detail"].upper()[:3]} for d in details]
        body = {"event": "tracking_update", "event_id": f"{self.random.getrandbits(64):016x}",
                "is_tracking_first_tag": len(details) == 1, "ts": int(self._when(at).timestamp()),
                "msg": {"tracking_number": tracking, "slug": carrier.lower(), "tag": checkpoints[-1]["tag"],
                        "subtag": checkpoints[-1]["subtag"],
                        "expected_delivery": (self._when(at) + timedelta(days=2)).date().isoformat(),
                        "checkpoints": checkpoints}}
        return self._send(at, topics.CARRIER_SCANS_RAW, tracking.encode(), orjson.dumps(body),
                          [(topics.SOURCE_HEADER, b"aftership")], kind="scan")

    def _shippo(self, at: float, carrier: str, tracking: str, details: list[dict]) -> Outgoing:
        history = [{"status": SHIPPO_STATUSES[d["status"]][0],
                    "substatus": {"code": SHIPPO_STATUSES[d["status"]][1], "text": d["message"],
                                  "action_required": False},
                    "status_details": d["message"], "status_date": d["datetime"],
                    "location": {"city": d["tracking_location"]["city"], "state": d["tracking_location"]["state"],
                                 "zip": None, "country": "US"}} for d in details]
        body = {"event": "track_updated", "test": False,
                "data": {"carrier": carrier.lower(), "tracking_number": tracking,
                         "eta": _iso(self._when(at) + timedelta(days=2)), "tracking_status": history[-1],
                         "tracking_history": history}}
        return self._send(at, topics.CARRIER_SCANS_RAW, tracking.encode(), orjson.dumps(body),
                          [(topics.SOURCE_HEADER, b"shippo")], kind="scan")

    def _retry(self, original: Outgoing, at: float) -> Outgoing:
        return self._send(at, original.topic, original.key, original.value, original.headers,
                          kind="scan")

    def _malformed(self, at: float) -> Outgoing:
        r = self.random
        choice = r.randrange(4)
        if choice == 0:
            return self._send(at, topics.CARRIER_SCANS_RAW, b"TRUNCATED", b'{"description": "tracker.upd',
                              [(topics.SOURCE_HEADER, b"easypost")], kind="malformed")
        if choice == 1:
            return self._send(at, topics.CARRIER_SCANS_RAW, b"X1", b"<xml>not json</xml>",
                              [(topics.SOURCE_HEADER, b"carrier-pigeon")], kind="malformed")
        if choice == 2:
            body = {"description": "tracker.updated", "result": {"carrier": "UPS", "status": "in_transit"}}
            return self._send(at, topics.CARRIER_SCANS_RAW, b"X2", orjson.dumps(body),
                              [(topics.SOURCE_HEADER, b"easypost")], kind="malformed")
        return self._send(at, topics.FC_EVENTS, b"ORD-BROKEN", b'{"type": "order_placed", "order_id": "ORD-BROKEN"}',
                          kind="malformed")

    def _fc(self, at: float, order_id: str, body: dict) -> Outgoing:
        return self._send(at, topics.FC_EVENTS, order_id.encode(), orjson.dumps(body), kind="fc")

    def _send(self, at: float, topic: str, key: bytes, value: bytes,
              headers: list[tuple[str, bytes]] | None = None, kind: str = "") -> Outgoing:
        self._seq += 1
        return Outgoing(max(at, 0.0), self._seq, topic, key, value, headers or [], kind)

    def _when(self, at: float) -> datetime:
        return self.start + timedelta(seconds=at * SIM_SPEEDUP)

    def stream(self, orders_per_second: float, duration: float) -> Iterator[Outgoing]:
        """Messages in due order for orders placed during ``duration`` seconds."""
        pending: list[Outgoing] = []
        next_order = 0.0
        while next_order < duration or pending:
            while next_order < duration and (not pending or pending[0].due >= next_order):
                for item in self.order_script(next_order):
                    heapq.heappush(pending, item)
                next_order += self.random.expovariate(orders_per_second)
            if pending:
                yield heapq.heappop(pending)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def run(producer, orders_per_second: float, duration: float, seed: int = 7,
        stop: object = None) -> dict[str, int]:
    """Produce the simulated stream in real time; returns counts by kind of message."""
    simulator = TrafficSimulator(seed=seed)
    counts: dict[str, int] = {}
    started = time.monotonic()
    for item in simulator.stream(orders_per_second, duration):
        if stop is not None and stop.is_set():  # type: ignore[attr-defined]
            break
        wait = item.due - (time.monotonic() - started)
        if wait > 0:
            time.sleep(wait)
        producer.produce(item.topic, key=item.key, value=item.value, headers=item.headers)
        producer.poll(0)
        counts[item.kind] = counts.get(item.kind, 0) + 1
    producer.flush(30)
    counts["orders"] = simulator.orders
    return counts
