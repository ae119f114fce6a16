"""A seeded generator of realistic order traffic.

Orders are placed, shipped in one or two packages and scanned by carriers through
EasyPost, AfterShip and Shippo webhooks that carry the whole tracking history, as those
services send them. Like real traffic it includes webhook retries (duplicates), late webhooks
with an older history (out of order), scans that arrive before the fulfillment center
announced the shipment, a few malformed payloads, and at a low rate:

- type-confused payloads: a copy of a real webhook with one value of the wrong type (an
  EasyPost ``description`` that is an object, an AfterShip ``event`` that is a list, a Shippo
  history ``status`` that is a list), each of which must end in the DLQ as ``invalid_field``
  while its original still arrives;
- a carrier whose feed is an hour late (``LATE_FEED_CARRIER``): whole journeys dated an hour
  back, each scan sent an hour after it happened (and the fulfillment center's events with
  them), on time in event time;
- carriers under a second name (``SECOND_NAMES``): the fulfillment center announces "UPS"
  and the scans come as an X12 214 with SCAC "UPSN", "DHL Express" and Shippo's
  ``dhl_express``, "FedEx Ground" and AfterShip's ``fedex``;
- a burst of old events: whole on-time journeys that happened one to two days ago, all sent
  within a couple of seconds half-way through the run, as after a partner's outage;
- scans of labels no fulfillment center ever announces (they end as unmatched scans).

A share of orders runs into trouble (``TROUBLES``): late warehouses, carriers that do not
collect, stale and lost tracking, late estimates, missed promises, long delivery routes,
exceptions, failed attempts, pickup points, returns and cancellations, reported by regional
carriers in the generic carrier JSON. Their gaps are seconds long, made for the demo's
thresholds (config/detection-demo.toml). Some customers publish preferences: channels,
opt-outs and quiet hours that cover the moment of the run (so some commands are deferred).

Event times follow the wall clock from ``start`` (default: now), so the worker's deadline
timer sees the same time the simulated carriers do.

The simulator keeps the ground truth of what it sent (``journeys``: per order the kind of
traffic, the trouble if any, and whether it was designed to miss a deadline; per package
the carrier's name on each side and how many distinct scans it has), so the demo can tell
a false delay notice from a deserved one and check what became of each kind of traffic.
"""

from __future__ import annotations

import heapq
import random
import time
import zlib
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
# Troubles designed to miss a deadline (a customer may hear of a delay, or of a lost package);
# every other journey meets every deadline, and a delay notice for it is false.
LATE_TROUBLES = frozenset({"warehouse_delay", "pickup_delay", "stale", "lost", "late_estimate", "promise_missed",
                           "long_route"})
ORDER_WIDE_TROUBLES = frozenset({"warehouse_delay", "promise_missed"})  # every package of the order is late
# A carrier whose scans arrive an hour after they happened.
LATE_FEED_CARRIER = ("OnTrac", "C{:014d}")
FEED_DELAY = timedelta(hours=1)
# (the fulfillment center's name, the scans' name, the format the scans come in, tracking pattern):
# models/carrier_codes.py folds each pair into one code.
SECOND_NAMES = [("UPS", "UPSN", "x12-214", "1Z{:016d}"), ("DHL Express", "dhl_express", "shippo", "{:010d}"),
                ("FedEx Ground", "fedex", "aftership", "{:012d}")]
# X12 214 AT707 time code and zone for the states of CITIES.
X12_TIME_CODES = {"NV": ("PT", "America/Los_Angeles"), "CA": ("PT", "America/Los_Angeles"),
                  "OH": ("ET", "America/New_York"), "KY": ("ET", "America/New_York"),
                  "GA": ("ET", "America/New_York"), "PA": ("ET", "America/New_York"),
                  "TN": ("CT", "America/Chicago"), "TX": ("CT", "America/Chicago")}
X12_STATUSES = {"pre_transit": "X3", "in_transit": "X4", "out_for_delivery": "X6", "delivered": "D1"}
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
    # Which kind of traffic it belongs to: live, late_feed, second_name, old_burst, unannounced.
    traffic: str = field(compare=False, default="live")


@dataclass
class TrafficMix:
    duplicate: float = 0.05
    out_of_order: float = 0.04
    scan_before_shipment: float = 0.05
    malformed: float = 0.01
    split_shipment: float = 0.2
    trouble: float = 0.25  # orders that run into one of TROUBLES
    preferences: float = 0.3  # customers who publish preferences with their first order
    type_confused: float = 0.01  # packages one of whose webhooks is also sent with a value of the wrong type
    late_feed: float = 0.02  # orders shipped with LATE_FEED_CARRIER, whose scans arrive an hour late
    second_name: float = 0.03  # packages whose scans name the carrier differently from the announcement
    unannounced: float = 0.01  # labels scanned that no fulfillment center announces (in the run's first 60%)
    old_burst_journeys: int = 20  # journeys of one to two days ago, sent in one burst
    old_burst_at: float = 0.5  # when the burst comes, as a share of the run


@dataclass
class PackageTruth:
    package_id: str
    tracking_number: str
    announced_as: str  # the carrier as the fulfillment center names it
    scanned_as: str  # the carrier as its scans name it
    source: str  # the format its scans come in
    late: bool  # designed to miss a deadline
    scans: int = 0  # distinct carrier events of its journey
    second_name: bool = False


@dataclass
class JourneyTruth:
    """What the simulator designed for one order: the ground truth the demo checks against."""

    order_id: str
    traffic: str  # live, late_feed or old_burst
    trouble: str
    late: bool  # designed to miss a deadline: a customer may hear of a delay
    shift: timedelta = timedelta(0)  # how long before it was sent the journey happened
    packages: list[PackageTruth] = field(default_factory=list)


class TrafficSimulator:
    def __init__(self, seed: int = 7, start: datetime | None = None, mix: TrafficMix | None = None,
                 scan_gap: tuple[float, float] = (0.5, 2.0)) -> None:
        self.random = random.Random(seed)
        self.start = (start or datetime.now(timezone.utc)).replace(microsecond=0)
        self.mix = mix or TrafficMix()
        self.scan_gap = scan_gap
        self._seq = 0
        self._shift = timedelta(0)  # event times of the journey being written are this far back
        self._traffic = "live"  # the kind of traffic of the messages being written
        self.orders = 0
        self.journeys: dict[str, JourneyTruth] = {}
        self.unannounced: list[str] = []  # tracking numbers no fulfillment center announces
        self.type_confused: list[bytes] = []  # the payloads sent with a value of the wrong type
        self.burst_at: float | None = None  # when the burst of old journeys was due (seconds into the run)

    def deserves_delay_notice(self, order_id: str, package_id: str = "") -> bool | None:
        """Whether a delay (or presumed-lost) notice for this order or package is deserved: its
        journey was designed to miss a deadline. None for an order this simulator did not write."""
        journey = self.journeys.get(order_id)
        if journey is None:
            return None
        package = next((p for p in journey.packages if p.package_id == package_id), None)
        return package.late if package else journey.late

    def order_script(self, at: float, traffic: str = "") -> list[Outgoing]:
        """Every message one order causes, each with the second it is due.

        ``traffic`` is "live" (the default: real time, a share of it troubled or with the
        late carrier), "late_feed" or "old_burst" (an on-time journey one to two days old,
        all of whose messages are due within a tenth of its natural span)."""
        r = self.random
        self.orders += 1
        order_id = f"ORD-{self.orders:07d}-{r.randrange(16**4):04x}"
        customer = f"CUST-{r.randrange(1, 50000):06d}"
        out = []
        if r.random() < self.mix.preferences:  # published now, whenever the journey happened
            out.append(self._preferences(at, customer))
        if not traffic:
            traffic = "late_feed" if r.random() < self.mix.late_feed else "live"
        shift = {"late_feed": FEED_DELAY,
                 "old_burst": timedelta(hours=r.uniform(24.1, 47.5))}.get(traffic, timedelta(0))
        self._shift, self._traffic = shift, traffic
        try:
            out.extend(self._order(at, order_id, customer, traffic))
        finally:
            self._shift, self._traffic = timedelta(0), "live"
        self.journeys[order_id].shift = shift
        if traffic == "old_burst":
            for item in out:
                item.due = at + (item.due - at) / 10
        return out

    def _order(self, at: float, order_id: str, customer: str, traffic: str) -> list[Outgoing]:
        r = self.random
        trouble = r.choice(TROUBLES) if traffic == "live" and r.random() < self.mix.trouble else ""
        journey = self.journeys[order_id] = JourneyTruth(order_id, traffic, trouble, trouble in LATE_TROUBLES)
        placed = self._when(at)
        level = {"locker": "locker_pickup", "early_estimate": "standard"}.get(trouble) or r.choice(SERVICE_LEVELS)
        days = {"same_day": 0, "one_day": 1, "two_day": 2}.get(level, 5)
        delivery_zone = r.choice(TIME_ZONES)
        # The promise is a date where the customer lives: "today" in Tokyo is not today in UTC.
        local = placed.astimezone(ZoneInfo(delivery_zone))
        promise = (local + timedelta(days=days)).date()
        if days == 0 and local.hour == 23 and local.minute >= 50:
            promise += timedelta(days=1)  # too late in the day for a same-day promise
        ship_by = placed + timedelta(hours=12)
        if trouble == "promise_missed":  # a backlog order: placed three days ago, promised yesterday
            placed = placed - timedelta(days=3)
            promise, ship_by = (local - timedelta(days=1)).date(), placed + timedelta(hours=6)
        elif trouble == "warehouse_delay":
            ship_by = placed + timedelta(seconds=3)
        items = [{"sku": f"SKU-{r.randrange(1, 5000):05d}", "quantity": r.randint(1, 3)}
                 for _ in range(r.randint(1, 3))]
        out = []
        out.append(self._fc(at, order_id, {
            "type": "order_placed", "event_id": f"{order_id}-placed", "order_id": order_id,
            "occurred_at": _iso(placed), "customer_id": customer,
            "seller_id": f"SELLER-{r.randrange(1, 40):03d}", "fulfillment_center": f"FC-{r.choice('ABCDEF')}",
            "service_level": level, "promised_delivery_date": promise.isoformat(),
            "ship_by": _iso(ship_by), "items": items, "delivery_time_zone": delivery_zone}))
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
            out.extend(self._package(journey, n, group if split else [], t + n * r.uniform(0.2, 1.0),
                                     trouble if n == 0 else "", promise))
        if r.random() < self.mix.malformed:
            out.append(self._malformed(at + r.uniform(0, 3)))
        return out

    def _package(self, journey: JourneyTruth, n: int, items: list[dict], shipped_at: float, trouble: str = "",
                 promise: date | None = None) -> list[Outgoing]:
        r = self.random
        order_id = journey.order_id
        carrier, pattern = LATE_FEED_CARRIER if journey.traffic == "late_feed" else r.choice(CARRIERS)
        source = r.choices(SOURCES, weights=SOURCE_WEIGHTS)[0]
        scanned_as = carrier
        second_name = journey.traffic == "live" and not journey.trouble and r.random() < self.mix.second_name
        if second_name:
            carrier, scanned_as, source, pattern = r.choice(SECOND_NAMES)
        tracking = pattern.format(r.randrange(10**9, 10**10))
        package_id = f"{order_id}-P{n + 1}"
        shipped = self._fc(shipped_at, order_id, {
            "type": "package_shipped", "event_id": f"{package_id}-shipped", "order_id": order_id,
            "occurred_at": _iso(self._when(shipped_at)), "package_id": package_id,
            "carrier": carrier, "tracking_number": tracking, "service": "Priority",
            "skus": [i["sku"] for i in items]})
        late = trouble in LATE_TROUBLES or journey.trouble in ORDER_WIDE_TROUBLES
        if trouble and trouble not in ("late_estimate", "early_estimate", "warehouse_delay", "promise_missed"):
            troubled = self._troubled_journey(order_id, package_id, carrier, tracking, shipped_at, trouble)
            scans = sum(1 for send in troubled if send.key == tracking.encode())  # one new event a send
            journey.packages.append(PackageTruth(package_id, tracking, carrier, carrier, "generic", late, scans))
            return [shipped, *troubled]
        if trouble:
            source = "easypost"
        journey.packages.append(PackageTruth(package_id, tracking, carrier, scanned_as, source, late,
                                             second_name=second_name))
        out = [shipped]
        steps = [("pre_transit", "label_created", "Shipping label created")]
        steps += [("in_transit", "arrived_at_facility", "Arrived at facility")] * r.randint(1, 3)
        steps += [("out_for_delivery", "out_for_delivery", "Out for delivery"),
                  ("delivered", "arrived_at_destination", "Delivered, front door")]
        t = shipped_at + r.uniform(0.1, 0.4)
        if r.random() < self.mix.scan_before_shipment:
            t = shipped_at - r.uniform(0.1, 0.3)  # the carrier is faster than the warehouse
        estimate = promise
        if promise and trouble in ("late_estimate", "early_estimate"):
            estimate = promise + timedelta(days=2 if trouble == "late_estimate" else -2)
        details: list[dict] = []
        sends: list[Outgoing] = []
        for status, detail, message in steps:
            city, state = r.choice(CITIES)
            details.append({"object": "TrackingDetail", "status": status, "status_detail": detail,
                            "message": message, "datetime": _iso(self._when(t)), "source": scanned_as,
                            "tracking_location": {"object": "TrackingLocation", "city": city,
                                                  "state": state, "country": "US", "zip": None}})
            if source == "x12-214":
                sends.append(self._x12(t, scanned_as, tracking, package_id, status, city, state))
            else:
                sends.append(self._webhook(t, carrier, tracking, status, list(details), source, estimate, scanned_as))
            # An X12 time has whole seconds: a second apart at least, or two scans would be one.
            t += max(r.uniform(*self.scan_gap), 1.0 if source == "x12-214" else 0.0)
        journey.packages[-1].scans = len(steps)
        if source != "x12-214" and r.random() < self.mix.type_confused:
            original = r.choice(sends)
            out.append(self._type_confused(original, source, original.due + r.uniform(0.05, 0.5)))
        for i, send in enumerate(list(sends)):
            if r.random() < self.mix.duplicate:
                sends.append(self._retry(send, send.due + r.uniform(0.05, 1.0)))
            if i and r.random() < self.mix.out_of_order:
                sends.append(self._retry(sends[i - 1], send.due + r.uniform(0.05, 0.5)))
        if second_name:
            for item in out[1:] + sends:
                item.traffic = "second_name"
        return out + sends

    def _troubled_journey(self, order_id: str, package_id: str, carrier: str, tracking: str, shipped: float,
                          trouble: str) -> list[Outgoing]:
        """A regional carrier's scans (generic JSON), timed to trip one detection or update type."""
        r = self.random
        pickup = {"pickup_code": f"{r.randrange(10**5):05d}"}
        steps: list[tuple[float, str, str, str, dict]] = [(0.3, "info_received", "LBL", "Label created", {})]
        routes: dict[str, list[tuple[float, str, str, str, dict]]] = {
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
        }
        steps += routes[trouble]
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
                       "time_zone": r.choice(TIME_ZONES), "updated_at": _iso(self._when(at)),
                       # Where to reach them (derived, not drawn: the seeded stream stays the same).
                       "email": f"{customer.lower()}@example.com",
                       "phone": f"+1 555 {zlib.crc32(customer.encode()) % 10_000_000:07d}"}
        if r.random() < 0.4:
            prefs["opted_out"] = [r.choice(OPT_OUTS)]
        if r.random() < 0.4:
            # Asleep right now where they live: commands for them wait until morning.
            local = self._when(at).astimezone(ZoneInfo(prefs["time_zone"]))
            prefs["quiet_hours"] = {"start": (local - timedelta(hours=2)).strftime("%H:00"),
                                    "end": (local + timedelta(hours=3)).strftime("%H:00")}
        return self._send(at, topics.CUSTOMER_PREFERENCES, customer.encode(), orjson.dumps(prefs), kind="preferences")

    def _webhook(self, at: float, carrier: str, tracking: str, status: str, details: list[dict],
                 source: str = "easypost", estimate: date | None = None, name: str = "") -> Outgoing:
        """The aggregator's webhook; ``name`` is the carrier as that aggregator spells it (default: its
        usual spelling of ``carrier``)."""
        if source == "aftership":
            return self._aftership(at, name if name and name != carrier else carrier.lower(), tracking, details)
        if source == "shippo":
            return self._shippo(at, name if name and name != carrier else carrier.lower(), tracking, details)
        when = self._when(at)
        event = {
            "id": f"evt_{self.random.getrandbits(64):016x}", "object": "Event",
            "description": "tracker.updated", "mode": "production",
            "created_at": _iso(when), "previous_attributes": {"status": "unknown"},
            "result": {"id": f"trk_{tracking[-10:]}", "object": "Tracker", "mode": "production",
                       "tracking_code": tracking, "carrier": name or carrier, "status": status,
                       "status_detail": details[-1]["status_detail"], "updated_at": _iso(when),
                       "est_delivery_date": estimate.isoformat() if estimate else None,
                       "tracking_details": details}}
        return self._send(at, topics.CARRIER_SCANS_RAW, tracking.encode(), orjson.dumps(event),
                          [(topics.SOURCE_HEADER, b"easypost")], kind="scan")

    def _aftership(self, at: float, slug: str, tracking: str, details: list[dict]) -> Outgoing:
        checkpoints = [{"slug": slug, "checkpoint_time": d["datetime"], "tag": AFTERSHIP_TAGS[d["status"]],
                        "subtag": AFTERSHIP_TAGS[d["status"]] + "_001", "message": d["message"],
                        "city": d["tracking_location"]["city"], "state": d["tracking_location"]["state"],
                        "country_region": "USA", "raw_tag": d["status_detail"].upper()[:3]} for d in details]
        body = {"event": "tracking_update", "event_id": f"{self.random.getrandbits(64):016x}",
                "is_tracking_first_tag": len(details) == 1, "ts": int(self._when(at).timestamp()),
                "msg": {"tracking_number": tracking, "slug": slug, "tag": checkpoints[-1]["tag"],
                        "subtag": checkpoints[-1]["subtag"],
                        "expected_delivery": None,
                        "checkpoints": checkpoints}}
        return self._send(at, topics.CARRIER_SCANS_RAW, tracking.encode(), orjson.dumps(body),
                          [(topics.SOURCE_HEADER, b"aftership")], kind="scan")

    def _shippo(self, at: float, carrier: str, tracking: str, details: list[dict]) -> Outgoing:
        """Shippo's ``track_updated``; ``carrier`` is Shippo's token for it (usps, dhl_express, ...)."""
        history = [{"status": SHIPPO_STATUSES[d["status"]][0],
                    "substatus": {"code": SHIPPO_STATUSES[d["status"]][1], "text": d["message"],
                                  "action_required": False},
                    "status_details": d["message"], "status_date": d["datetime"],
                    "location": {"city": d["tracking_location"]["city"], "state": d["tracking_location"]["state"],
                                 "zip": None, "country": "US"}} for d in details]
        body = {"event": "track_updated", "test": False,
                "data": {"carrier": carrier, "tracking_number": tracking,
                         "eta": None, "tracking_status": history[-1],
                         "tracking_history": history}}
        return self._send(at, topics.CARRIER_SCANS_RAW, tracking.encode(), orjson.dumps(body),
                          [(topics.SOURCE_HEADER, b"shippo")], kind="scan")

    def _x12(self, at: float, scac: str, tracking: str, shipment: str, status: str, city: str,
             state: str) -> Outgoing:
        """One X12 214 interchange with one shipment status, in local time at the place it happened."""
        self._seq += 1
        control = self._seq % 10**9
        time_code, zone = X12_TIME_CODES[state]
        local = self._when(at).astimezone(ZoneInfo(zone))
        sent = self._when(at).astimezone(timezone.utc)
        segments = [
            "ST*214*0001", f"B10*{tracking}*{shipment}*{scac}", f"L11*{tracking}*2I", "LX*1",
            f"AT7*{X12_STATUSES[status]}*NS***{local:%Y%m%d}*{local:%H%M%S}*{time_code}",
            f"MS1*{city.upper()}*{state}*US",
        ]
        segments.append(f"SE*{len(segments) + 1}*0001")
        body = "".join(f"{segment}~" for segment in [
            f"GS*QM*{scac}*TRACKLINE*{sent:%Y%m%d}*{sent:%H%M}*{control}*X*004010", *segments,
            f"GE*1*{control}", f"IEA*1*{control:09d}"])
        isa = (f"ISA*00*{'':10}*00*{'':10}*02*{scac:<15}*ZZ*{'TRACKLINE':<15}*{sent:%y%m%d}*{sent:%H%M}"
               f"*U*00401*{control:09d}*0*P*>~")
        return self._send(at, topics.CARRIER_SCANS_RAW, tracking.encode(), (isa + body).encode(),
                          [(topics.SOURCE_HEADER, b"x12-214")], kind="scan")

    def _type_confused(self, original: Outgoing, source: str, at: float) -> Outgoing:
        """A copy of a webhook with one value of the wrong type: well-formed JSON the adapter must refuse
        (invalid_field), while the original is read as usual."""
        body = orjson.loads(original.value)
        if self.random.random() < 0.5:
            if source == "easypost":
                body["description"] = {"type": body["description"]}
            elif source == "aftership":
                body["event"] = [body["event"]]
            else:
                history = body["data"]["tracking_history"]
                entry = history[self.random.randrange(len(history))]
                entry["status"] = [entry["status"]]
        elif source == "easypost":
            body["result"]["tracking_details"][-1]["datetime"] = 1_700_000_000  # epoch, not ISO 8601
        elif source == "aftership":
            body["msg"]["checkpoints"][-1]["checkpoint_time"] = {"time": body["msg"]["checkpoints"][-1][
                "checkpoint_time"]}
        else:
            body["data"]["tracking_history"][-1]["status_date"] = 1_700_000_000
        value = orjson.dumps(body)
        self.type_confused.append(value)
        return self._send(at, original.topic, original.key, value, original.headers, kind="type_confused")

    def _unannounced(self, at: float) -> list[Outgoing]:
        """A label the carrier scans and no fulfillment center announces (voided, or another shop's)."""
        r = self.random
        carrier, pattern = r.choice(CARRIERS)
        tracking = pattern.format(r.randrange(10**9, 10**10))
        self.unannounced.append(tracking)
        city, state = r.choice(CITIES)
        details = [{"object": "TrackingDetail", "status": "pre_transit", "status_detail": "label_created",
                    "message": "Shipping label created", "datetime": _iso(self._when(at)), "source": carrier,
                    "tracking_location": {"object": "TrackingLocation", "city": city, "state": state,
                                          "country": "US", "zip": None}}]
        self._traffic = "unannounced"
        try:
            return [self._webhook(at, carrier, tracking, "pre_transit", details,
                                  r.choices(SOURCES, weights=SOURCE_WEIGHTS)[0])]
        finally:
            self._traffic = "live"

    def old_burst(self, at: float) -> list[Outgoing]:
        """Whole on-time journeys of one to two days ago, all due within a couple of seconds of ``at``."""
        return [item for _ in range(self.mix.old_burst_journeys) for item in self.order_script(at, "old_burst")]

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
        return Outgoing(max(at, 0.0), self._seq, topic, key, value, headers or [], kind, self._traffic)

    def _when(self, at: float) -> datetime:
        """The event time of a message due ``at`` seconds into the run (earlier for old journeys)."""
        return self.start + timedelta(seconds=at) - self._shift

    def stream(self, orders_per_second: float, duration: float) -> Iterator[Outgoing]:
        """Messages in due order for orders placed during ``duration`` seconds, the burst of old
        journeys at ``mix.old_burst_at`` of it."""
        pending: list[Outgoing] = []
        next_order = 0.0
        burst_at = duration * self.mix.old_burst_at if self.mix.old_burst_journeys else None
        while next_order < duration or pending:
            while True:
                due = next_order if burst_at is None else min(next_order, burst_at)
                if due >= duration or (pending and pending[0].due < due):
                    break
                if burst_at is not None and burst_at <= next_order:
                    self.burst_at = burst_at
                    script, burst_at = self.old_burst(burst_at), None
                else:
                    script = self.order_script(next_order)
                    # Within the run's first 60% (their wait for an order must end before the demo
                    # does), and one at the start of every run that has them at all.
                    if self.mix.unannounced and next_order < duration * 0.6 and (
                            not self.unannounced or self.random.random() < self.mix.unannounced):
                        script += self._unannounced(next_order + self.random.uniform(0, 2))
                    next_order += self.random.expovariate(orders_per_second)
                for item in script:
                    heapq.heappush(pending, item)
            if pending:
                yield heapq.heappop(pending)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def run(producer, orders_per_second: float, duration: float, seed: int = 7,
        stop: object = None, simulator: TrafficSimulator | None = None) -> dict[str, int]:
    """Produce the simulated stream in real time; returns counts by kind of message, and of the
    messages of each kind of traffic other than live (``"late_feed messages"``, ...). Pass
    ``simulator`` to read its ground truth (``journeys``) afterwards."""
    simulator = simulator or TrafficSimulator(seed=seed)
    if not simulator.orders:  # made earlier: its clock starts now, with the messages
        simulator.start = datetime.now(timezone.utc).replace(microsecond=0)
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
        if item.traffic != "live":
            counts[f"{item.traffic} messages"] = counts.get(f"{item.traffic} messages", 0) + 1
    producer.flush(30)
    counts["orders"] = simulator.orders
    return counts
