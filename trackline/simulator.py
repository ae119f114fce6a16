"""A seeded generator of realistic order traffic.

Orders are placed, shipped in one or two packages and scanned by carriers through
EasyPost, AfterShip and Shippo webhooks that carry the whole tracking history, as those
services send them. Like real traffic it includes webhook retries (duplicates), late webhooks
with an older history (out of order), scans that arrive before the fulfillment center
announced the shipment, and a few malformed payloads.

A share of orders runs into trouble (``TROUBLES``): late warehouses, carriers that do not
collect, stale and lost tracking, late estimates, missed promises, long delivery routes,
exceptions, failed attempts, pickup points, returns and cancellations, reported by regional
carriers in the generic carrier JSON. Their gaps are seconds long, made for the demo's
thresholds (config/detection-demo.toml). Some customers publish preferences: channels,
opt-outs and quiet hours that cover the moment of the run (so some commands are deferred).

Event times follow the wall clock from ``start`` (default: now), so the worker's deadline
timer sees the same time the simulated carriers do.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

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
TROUBLES = ["warehouse_delay", "pickup_delay", "stale", "lost", "late_estimate", "early_estimate", "promise_missed",
            "long_route", "address_exception", "refused", "attempt_failed", "locker", "return", "cancelled"]
TIME_ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "Europe/Berlin",
              "Asia/Tokyo", "UTC"]
OPT_OUTS = ["estimate_revised", "feedback_request", "out_for_delivery"]


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
    trouble: float = 0.25  # orders that run into one of TROUBLES
    preferences: float = 0.3  # customers who publish preferences with their first order


class TrafficSimulator:
    def __init__(self, seed: int = 7, start: datetime | None = None, mix: TrafficMix | None = None,
                 scan_gap: tuple[float, float] = (0.5, 2.0)) -> None:
        self.random = random.Random(seed)
        self.start = (start or datetime.now(timezone.utc)).replace(microsecond=0)
        self.mix = mix or TrafficMix()
        self.scan_gap = scan_gap
        self._seq = 0
        self.orders = 0

    def order_script(self, at: float) -> list[Outgoing]:
        """Every message one order causes, each with the second it is due."""
        r = self.random
        self.orders += 1
        order_id = f"ORD-{self.orders:07d}-{r.randrange(16**4):04x}"
        trouble = r.choice(TROUBLES) if r.random() < self.mix.trouble else ""
        placed = self._when(at)
        level = {"locker": "locker_pickup", "early_estimate": "standard"}.get(trouble) or r.choice(SERVICE_LEVELS)
        days = {"same_day": 0, "one_day": 1, "two_day": 2}.get(level, 5)
        promise = (placed + timedelta(days=days)).date()
        ship_by = placed + timedelta(hours=12)
        if trouble == "promise_missed":  # a backlog order: placed three days ago, promised yesterday
            placed = placed - timedelta(days=3)
            promise, ship_by = (self._when(at) - timedelta(days=1)).date(), placed + timedelta(hours=6)
        elif trouble == "warehouse_delay":
            ship_by = placed + timedelta(seconds=3)
        customer = f"CUST-{r.randrange(1, 50000):06d}"
        items = [{"sku": f"SKU-{r.randrange(1, 5000):05d}", "quantity": r.randint(1, 3)}
                 for _ in range(r.randint(1, 3))]
        out = []
        if r.random() < self.mix.preferences:
            out.append(self._preferences(at, customer))
        out.append(self._fc(at, order_id, {
            "type": "order_placed", "event_id": f"{order_id}-placed", "order_id": order_id,
            "occurred_at": _iso(placed), "customer_id": customer,
            "seller_id": f"SELLER-{r.randrange(1, 40):03d}", "fulfillment_center": f"FC-{r.choice('ABCDEF')}",
            "service_level": level, "promised_delivery_date": promise.isoformat(),
            "ship_by": _iso(ship_by), "items": items, "delivery_time_zone": r.choice(TIME_ZONES)}))
        processing = at + r.uniform(0.05, 0.2)
        out.append(self._fc(processing, order_id, {
            "type": "order_processing", "event_id": f"{order_id}-processing", "order_id": order_id,
            "occurred_at": _iso(self._when(processing) if trouble != "promise_missed" else placed)}))
        if trouble == "cancelled":
            out.append(self._fc(at + 0.3, order_id, {
                "type": "order_cancelled", "event_id": f"{order_id}-cancel", "order_id": order_id,
                "occurred_at": _iso(self._when(at + 0.3)), "reason": "customer request"}))
            return out
        split = len(items) > 1 and r.random() < self.mix.split_shipment
        groups = [items[:1], items[1:]] if split else [items]
        t = at + (10.0 if trouble == "warehouse_delay" else r.uniform(0.3, 1.0))
        for n, group in enumerate(groups):
            out.extend(self._package(order_id, n, group if split else [], t + n * r.uniform(0.2, 1.0),
                                     trouble if n == 0 else "", promise))
        if r.random() < self.mix.malformed:
            out.append(self._malformed(at + r.uniform(0, 3)))
        return out

    def _package(self, order_id: str, n: int, items: list[dict], shipped_at: float, trouble: str = "",
                 promise: date | None = None) -> list[Outgoing]:
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
        if trouble and trouble not in ("late_estimate", "early_estimate", "warehouse_delay", "promise_missed"):
            return [shipped, *self._troubled_journey(order_id, package_id, carrier, tracking, shipped_at, trouble)]
        out = [shipped]
        journey = [("pre_transit", "label_created", "Shipping label created")]
        journey += [("in_transit", "arrived_at_facility", "Arrived at facility")] * r.randint(1, 3)
        journey += [("out_for_delivery", "out_for_delivery", "Out for delivery"),
                    ("delivered", "arrived_at_destination", "Delivered, front door")]
        t = shipped_at + r.uniform(0.1, 0.4)
        if r.random() < self.mix.scan_before_shipment:
            t = shipped_at - r.uniform(0.1, 0.3)  # the carrier is faster than the warehouse
        estimate = promise
        if promise and trouble in ("late_estimate", "early_estimate"):
            estimate = promise + timedelta(days=2 if trouble == "late_estimate" else -2)
        details: list[dict] = []
        sends: list[Outgoing] = []
        for status, detail, message in journey:
            city, state = r.choice(CITIES)
            details.append({"object": "TrackingDetail", "status": status, "status_detail": detail,
                            "message": message, "datetime": _iso(self._when(t)), "source": carrier,
                            "tracking_location": {"object": "TrackingLocation", "city": city,
                                                  "state": state, "country": "US", "zip": None}})
            sends.append(self._webhook(t, carrier, tracking, status, list(details),
                                       "easypost" if trouble else source, estimate))
            t += r.uniform(*self.scan_gap)
        for i, send in enumerate(list(sends)):
            if r.random() < self.mix.duplicate:
                sends.append(self._retry(send, send.due + r.uniform(0.05, 1.0)))
            if i and r.random() < self.mix.out_of_order:
                sends.append(self._retry(sends[i - 1], send.due + r.uniform(0.05, 0.5)))
        return out + sends

    def _troubled_journey(self, order_id: str, package_id: str, carrier: str, tracking: str, shipped: float,
                          trouble: str) -> list[Outgoing]:
        """A regional carrier's scans (generic JSON), timed to trip one detection or update type."""
        r = self.random
        pickup = {"pickup_code": f"{r.randrange(10**5):05d}"}
        steps: list[tuple[float, str, str, str, dict]] = [(0.3, "info_received", "LBL", "Label created", {})]
        route = {
            "pickup_delay": [(16, "in_transit", "DEP", "Departed facility", {})],
            # A code this carrier invented: status unknown, raw code kept and counted.
            "stale": [(1, "in_transit", "ARR", "Arrived at facility", {}),
                      (1.5, "", "HUB7", "Processed through regional hub", {}),
                      (20, "in_transit", "DEP", "Departed facility", {})],
            "lost": [(1, "in_transit", "ARR", "Arrived at facility", {})],
            "long_route": [(1, "in_transit", "ARR", "Arrived at facility", {}),
                           (2, "out_for_delivery", "OFD", "Out for delivery", {})],
            "address_exception": [(1, "in_transit", "ARR", "Arrived at facility", {}),
                                  (2, "exception", "ADDR", "Incorrect address, contacting recipient", {}),
                                  (5, "in_transit", "ARR", "Address corrected", {}),
                                  (6, "out_for_delivery", "OFD", "Out for delivery", {})],
            "refused": [(1, "in_transit", "ARR", "Arrived at facility", {}),
                        (2, "out_for_delivery", "OFD", "Out for delivery", {}),
                        (3, "exception", "REF", "Refused by recipient", {}),
                        (4, "returning_to_sender", "RTS", "Returning to sender", {}),
                        (8, "returned_to_sender", "RTD", "Returned to sender", {})],
            "attempt_failed": [(1, "in_transit", "ARR", "Arrived at facility", {}),
                               (2, "out_for_delivery", "OFD", "Out for delivery", {}),
                               (3, "attempt_failed", "NA", "Recipient not available, notice left", {}),
                               (4, "available_for_pickup", "PUA", "Held at Main St post office", pickup)],
            "locker": [(1, "in_transit", "ARR", "Arrived at facility", {}),
                       (2, "available_for_pickup", "LKR", "In locker 12, 400 Main St", pickup)],
            "return": [(1, "in_transit", "ARR", "Arrived at facility", {}),
                       (2, "out_for_delivery", "OFD", "Out for delivery", {})],
        }[trouble]
        steps += route
        if trouble not in ("lost", "refused"):
            steps.append((steps[-1][0] + (13 if trouble == "long_route" else r.uniform(0.5, 2)), "delivered",
                          "DEL", "Delivered, front door", {}))
        out = self._generic_sends(carrier, tracking, shipped, steps)
        if trouble == "return":
            out.extend(self._return(order_id, package_id, shipped + steps[-1][0] + 3))
        return out

    def _generic_sends(self, carrier: str, tracking: str, start: float,
                       steps: list[tuple[float, str, str, str, dict]]) -> list[Outgoing]:
        city, state = self.random.choice(CITIES)
        events: list[dict] = []
        sends = []
        for offset, status, code, message, extra in steps:
            events.append({"status": status, "code": code, "message": message,
                           "occurred_at": _iso(self._when(start + offset)), "location": f"{city}, {state}", **extra})
            body = {"carrier": carrier, "tracking_number": tracking, "events": list(events)}
            sends.append(self._send(start + offset, topics.CARRIER_SCANS_RAW, tracking.encode(), orjson.dumps(body),
                                    [(topics.SOURCE_HEADER, b"generic")], kind="scan"))
        return sends

    def _return(self, order_id: str, package_id: str, at: float) -> list[Outgoing]:
        return_id = f"{package_id}-R"
        label = f"9202{self.random.randrange(10**12, 10**13)}"

        def fc(offset: float, body: dict) -> Outgoing:
            return self._fc(at + offset, order_id, {"event_id": f"{return_id}-{body['type']}", "order_id": order_id,
                                                    "occurred_at": _iso(self._when(at + offset)),
                                                    "return_id": return_id, **body})

        return [
            fc(0, {"type": "return_requested", "reason": "too small", "carrier": "USPS", "tracking_number": label}),
            *self._generic_sends("USPS", label, at + 1, [(0, "in_transit", "ACC", "Accepted at post office", {}),
                                                         (2, "delivered", "DEL", "Delivered to warehouse", {})]),
            fc(4, {"type": "return_received"}),
            fc(5, {"type": "refund_issued", "amount": "24.90", "currency": "USD"}),
        ]

    def _preferences(self, at: float, customer: str) -> Outgoing:
        r = self.random
        prefs: dict = {"customer_id": customer, "locale": r.choice(["en-US", "en-GB", "de-DE", "ja-JP"]),
                       "channels": sorted(r.sample(["email", "sms", "push"], r.randint(1, 3))),
                       "time_zone": r.choice(TIME_ZONES), "updated_at": _iso(self._when(at))}
        if r.random() < 0.4:
            prefs["opted_out"] = [r.choice(OPT_OUTS)]
        if r.random() < 0.4:
            # Asleep right now where they live: commands for them wait until morning.
            local = self._when(at).astimezone(ZoneInfo(prefs["time_zone"]))
            prefs["quiet_hours"] = {"start": (local - timedelta(hours=2)).strftime("%H:00"),
                                    "end": (local + timedelta(hours=3)).strftime("%H:00")}
        return self._send(at, topics.CUSTOMER_PREFERENCES, customer.encode(), orjson.dumps(prefs), kind="preferences")

    def _webhook(self, at: float, carrier: str, tracking: str, status: str, details: list[dict],
                 source: str = "easypost", estimate: date | None = None) -> Outgoing:
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
                       "est_delivery_date": estimate.isoformat() if estimate else None,
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
                        "expected_delivery": None,
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
                         "eta": None, "tracking_status": history[-1],
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
        return self.start + timedelta(seconds=at)

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
