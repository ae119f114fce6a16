"""A simulated world that knows what really happened: the ground truth ``make quality`` scores against.

Unlike the demo's simulator (seconds-long journeys for the demo's thresholds), these journeys
take days: orders from three fulfillment centers to ten states, carried by carriers with their
own speed, working days, estimate habits and failures, over ``days`` days of event time. Every
package knows its true delivery time (or that it was lost), when it missed its promise, when it
went silent, and each estimate its carrier published.

The parameters live in ``config/quality-world.toml``, frozen before any estimate model was
built (``FROZEN_SHA256``). Nothing the model runs on may read them: it learns from what the
pipeline sees. The messages are what fulfillment centers and aggregators send, in the
documented shapes, each with the time trackline receives it (its record timestamp: the
pipeline's event-time clock reads it).
"""

from __future__ import annotations

import hashlib
import math
import random
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from models import topics

PARAMETERS = Path(str(resources.files("config") / "quality-world.toml"))
# The parameters as frozen (issue 13): a changed file fails tests/unit/test_quality_world.py.
FROZEN_SHA256 = "c03d70663f5fad846d632ed6ed274e5779c73dd856a6afacefedaf8467252a23"

@dataclass
class Message:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    received_at: datetime  # the record timestamp: when trackline receives it


@dataclass
class Estimate:
    published_at: datetime  # the scan time it came with
    received_at: datetime  # when trackline received it
    delivery_date: date


@dataclass
class PackageTruth:
    """One package's journey as it really happened."""

    order_id: str
    package_id: str
    tracking_number: str
    carrier: str
    source: str
    service_level: str
    origin: str  # fulfillment center
    destination_state: str
    distance: str  # same | near | far
    time_zone: str  # the customer's
    placed_at: datetime
    promised: date  # in the customer's calendar
    shipped_at: datetime
    delivered_at: datetime | None  # None: lost
    lost: bool = False
    stale: tuple[datetime, datetime] | None = None  # a silence mid-journey
    scans: list[tuple[datetime, str]] = field(default_factory=list)  # (event time, EasyPost-style status)
    estimates: list[Estimate] = field(default_factory=list)

    @property
    def lane(self) -> str:
        return f"{self.origin} -> US-{self.destination_state}"

    @property
    def delivered_date(self) -> date | None:
        return self.delivered_at.astimezone(ZoneInfo(self.time_zone)).date() if self.delivered_at else None

    @property
    def late(self) -> bool:
        """Missed its promise: delivered after the promised day where the customer lives, or lost."""
        return self.lost or (self.delivered_date is not None and self.delivered_date > self.promised)

    @property
    def late_at(self) -> datetime | None:
        """The moment it became late: the end of the promised day, local."""
        if not self.late:
            return None
        return datetime.combine(self.promised + timedelta(days=1), time(0), ZoneInfo(self.time_zone))


def load(path: Path = PARAMETERS) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def parameters_hash(path: Path = PARAMETERS) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class World:
    def __init__(self, params: dict[str, Any] | None = None, seed: int | None = None,
                 days: int | None = None, orders_per_day: int | None = None) -> None:
        self.p = params or load()
        self.random = random.Random(self.p["seed"] if seed is None else seed)
        self.start = datetime.fromisoformat(self.p["start"].replace("Z", "+00:00"))
        self.days = days or self.p["days"]
        self.orders_per_day = orders_per_day or self.p["orders_per_day"]
        self.truth: dict[str, PackageTruth] = {}  # by order id (one package an order)

    # --- the journeys ---------------------------------------------------------------------

    def messages(self) -> list[Message]:
        """Every message of every journey, in the order trackline receives them."""
        out: list[Message] = []
        for n in range(self.days * self.orders_per_day):
            placed = self.start + timedelta(seconds=self.random.uniform(0, self.days * 86_400))
            out.extend(self._journey(n, placed))
        out.sort(key=lambda m: m.received_at)
        return out

    def _journey(self, n: int, placed: datetime) -> Iterator[Message]:
        r, p = self.random, self.p
        levels = p["service_levels"]
        level = r.choices(list(levels), weights=[levels[name]["share"] for name in levels])[0]
        mix = p["carrier_mix"][level]
        carrier = r.choices(list(mix), weights=list(mix.values()))[0]
        c = p["carriers"][carrier]
        origin = r.choice(sorted(p["centers"]))
        states = p["states"]
        state = r.choices(list(states), weights=[states[s]["weight"] for s in states])[0]
        zone = states[state]["time_zone"]
        distance = self._distance(states[p["centers"][origin]["state"]]["zone"], states[state]["zone"])
        order_id = f"Q-{n:06d}"
        tracking = f"QT{n:010d}{carrier[:2].upper()}"
        promised = self._promise(placed, zone, levels[level])
        shipped = placed + timedelta(hours=r.uniform(*p["handling_hours"]))
        working = set(c["working_days"])
        transit = levels[level]["transit_days"][distance] * c["speed"] * math.exp(r.gauss(0, levels[level]["sigma"]))
        stale: tuple[datetime, datetime] | None = None
        extra = 0.0
        if r.random() < c["stale_share"]:
            extra = r.uniform(*c["stale_days"])
        accepted = shipped + timedelta(hours=r.uniform(1, 5))
        arrives = self._working_time(accepted, transit + extra, working, zone)
        delivered = self._delivery_moment(arrives, working, zone)
        lost = r.random() < c["lost_share"]
        # Scans: label, acceptance, a few in transit, out for delivery, delivered.
        ofd = datetime.combine(delivered.astimezone(ZoneInfo(zone)).date(), time(7), ZoneInfo(zone)) + timedelta(
            minutes=r.uniform(0, 90))
        ofd = max(ofd, accepted + timedelta(hours=1))
        middle = sorted(accepted + (ofd - accepted) * r.uniform(0.05, 0.95)
                        for _ in range(max(1, round(transit * 1.5))))
        if extra:  # a silence of ``extra`` days somewhere in the middle: drop the scans inside it
            quiet_from = accepted + (ofd - accepted) * r.uniform(0.1, 0.4)
            stale = (quiet_from, quiet_from + timedelta(days=extra))
            middle = [m for m in middle if not stale[0] < m < stale[1]]
        scans = [(shipped - timedelta(minutes=r.uniform(5, 60)), "pre_transit"), (accepted, "in_transit"),
                 *[(m, "in_transit") for m in middle], (ofd, "out_for_delivery"), (delivered, "delivered")]
        if lost:  # the last scans never come
            scans = scans[:r.randint(2, max(2, len(scans) - 2))]
        truth = PackageTruth(
            order_id=order_id, package_id=f"{order_id}-P1", tracking_number=tracking, carrier=carrier,
            source=c["source"], service_level=level, origin=origin, destination_state=state, distance=distance,
            time_zone=zone, placed_at=placed, promised=promised, shipped_at=shipped,
            delivered_at=None if lost else delivered, lost=lost, stale=stale, scans=scans)
        self.truth[order_id] = truth
        postal = r.choice(states[state]["postal"]) + f"{r.randrange(100):02d}"
        yield self._fc(placed, {
            "type": "order_placed", "event_id": f"{order_id}-placed", "order_id": order_id,
            "occurred_at": _iso(placed), "customer_id": f"QC-{r.randrange(1, 100_000):06d}", "seller_id": "SELLER-Q",
            "fulfillment_center": origin, "service_level": level, "promised_delivery_date": promised.isoformat(),
            "ship_by": _iso(placed + timedelta(hours=24)), "items": [{"sku": "SKU-Q", "quantity": 1}],
            "delivery_time_zone": zone, "destination": {"country": "US", "region": state, "postal_code": postal}})
        yield self._fc(shipped, {
            "type": "package_shipped", "event_id": f"{order_id}-shipped", "order_id": order_id,
            "occurred_at": _iso(shipped), "package_id": truth.package_id, "carrier": carrier,
            "tracking_number": tracking})
        yield from self._webhooks(truth, c, delivered)

    def _webhooks(self, truth: PackageTruth, c: dict[str, Any], planned: datetime) -> Iterator[Message]:
        r = self.random
        zone = ZoneInfo(truth.time_zone)
        planned_date = planned.astimezone(zone).date()
        estimate: date | None = None
        for i, (at, status) in enumerate(truth.scans):
            received = at + timedelta(minutes=self.p["feed_delay_minutes"] * math.exp(r.gauss(0, 0.8)))
            if status != "pre_transit":
                if estimate is None:  # the carrier's first estimate, with its habits
                    estimate = planned_date + timedelta(days=round(r.gauss(c["estimate_bias_days"],
                                                                            c["estimate_spread_days"])))
                if status in ("out_for_delivery", "delivered") or (planned - at) <= timedelta(hours=c["revise_hours"]):
                    estimate = planned_date
                estimate = max(estimate, at.astimezone(zone).date())  # never a date already past
                if not truth.estimates or truth.estimates[-1].delivery_date != estimate:
                    truth.estimates.append(Estimate(at, received, estimate))
            yield self._webhook(truth, truth.scans[:i + 1], estimate, received)

    def _webhook(self, truth: PackageTruth, scans: list[tuple[datetime, str]], estimate: date | None,
                 received: datetime) -> Message:
        details: list[dict[str, Any]] = [
                   {"object": "TrackingDetail", "status": status, "status_detail": _DETAIL[status],
                    "message": _MESSAGE[status], "datetime": _iso(at), "source": truth.carrier,
                    "tracking_location": {"object": "TrackingLocation", "city": "", "state": truth.destination_state
                                          if status in ("out_for_delivery", "delivered") else "",
                                          "country": "US", "zip": None}} for at, status in scans]
        if truth.source == "aftership":
            checkpoints = [{"slug": truth.carrier.lower(), "checkpoint_time": d["datetime"],
                            "tag": _AFTERSHIP[d["status"]], "subtag": _AFTERSHIP[d["status"]] + "_001",
                            "message": d["message"], "country_region": "USA"} for d in details]
            body: dict[str, Any] = {
                "event": "tracking_update", "event_id": f"{truth.tracking_number}-{len(scans)}",
                "is_tracking_first_tag": len(scans) == 1, "ts": int(received.timestamp()),
                "msg": {"tracking_number": truth.tracking_number, "slug": truth.carrier.lower(),
                        "tag": checkpoints[-1]["tag"], "subtag": checkpoints[-1]["subtag"],
                        "expected_delivery": estimate.isoformat() if estimate else None, "checkpoints": checkpoints}}
        elif truth.source == "shippo":
            history = [{"status": _SHIPPO[d["status"]][0],
                        "substatus": {"code": _SHIPPO[d["status"]][1], "text": d["message"], "action_required": False},
                        "status_details": d["message"], "status_date": d["datetime"],
                        "location": {"city": "", "state": "", "zip": None, "country": "US"}} for d in details]
            body = {"event": "track_updated", "test": False,
                    "data": {"carrier": truth.carrier.lower(), "tracking_number": truth.tracking_number,
                             "eta": _iso(datetime.combine(estimate, time(20), timezone.utc)) if estimate else None,
                             "tracking_status": history[-1], "tracking_history": history}}
        else:
            body = {"id": f"evt_{truth.tracking_number}_{len(scans)}", "object": "Event",
                    "description": "tracker.updated", "mode": "production", "created_at": _iso(received),
                    "result": {"id": f"trk_{truth.tracking_number}", "object": "Tracker", "mode": "production",
                               "tracking_code": truth.tracking_number, "carrier": truth.carrier,
                               "status": scans[-1][1], "status_detail": _DETAIL[scans[-1][1]],
                               "updated_at": _iso(received),
                               "est_delivery_date": _iso(datetime.combine(estimate, time(12), timezone.utc))
                               if estimate else None, "tracking_details": details}}
        return Message(topics.CARRIER_SCANS_RAW, truth.tracking_number.encode(), orjson.dumps(body),
                       [(topics.SOURCE_HEADER, truth.source.encode())], received)

    def _fc(self, at: datetime, body: dict[str, Any]) -> Message:
        received = at + timedelta(seconds=self.random.uniform(5, 90))
        return Message(topics.FC_EVENTS, body["order_id"].encode(), orjson.dumps(body), [], received)

    # --- calendars ------------------------------------------------------------------------

    def _distance(self, origin_zone: str, destination_zone: str) -> str:
        pair = f"{origin_zone}-{destination_zone}"
        return next((name for name, pairs in self.p["distance"].items() if pair in pairs), "far")

    def _promise(self, placed: datetime, zone: str, level: dict[str, Any]) -> date:
        local = placed.astimezone(ZoneInfo(zone))
        day = local.date() + timedelta(days=1 if local.hour >= level["cutoff_hour"] else 0)
        left = level["promise_business_days"]
        while left:
            day += timedelta(days=1)
            if day.weekday() < 5:
                left -= 1
        return day

    @staticmethod
    def _working_time(start: datetime, days: float, working: set[int], zone: str) -> datetime:
        """``days`` of the carrier's moving time after ``start``: its days off do not count."""
        local = start.astimezone(ZoneInfo(zone))
        left = timedelta(days=days)
        while True:
            midnight = datetime.combine(local.date() + timedelta(days=1), time(0), ZoneInfo(zone))
            if local.weekday() in working:
                if local + left <= midnight:
                    return local + left
                left -= midnight - local
            local = midnight

    def _delivery_moment(self, arrives: datetime, working: set[int], zone: str) -> datetime:
        """Delivered between 9:00 and 20:00 on one of the carrier's working days."""
        local = arrives.astimezone(ZoneInfo(zone))
        if local.weekday() in working and 9 <= local.hour < 20:
            return local
        day = local.date() + timedelta(days=0 if local.hour < 9 else 1)
        while day.weekday() not in working:
            day += timedelta(days=1)
        return datetime.combine(day, time(9), ZoneInfo(zone)) + timedelta(hours=self.random.uniform(0, 6))


_DETAIL = {"pre_transit": "label_created", "in_transit": "arrived_at_facility",
           "out_for_delivery": "out_for_delivery", "delivered": "arrived_at_destination"}
_MESSAGE = {"pre_transit": "Shipping label created", "in_transit": "Arrived at facility",
            "out_for_delivery": "Out for delivery", "delivered": "Delivered"}
_AFTERSHIP = {"pre_transit": "InfoReceived", "in_transit": "InTransit", "out_for_delivery": "OutForDelivery",
              "delivered": "Delivered"}
_SHIPPO = {"pre_transit": ("PRE_TRANSIT", "information_received"), "in_transit": ("TRANSIT", "package_arrived"),
           "out_for_delivery": ("TRANSIT", "out_for_delivery"), "delivered": ("DELIVERED", "delivered")}


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
