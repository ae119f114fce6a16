"""What trackline remembers per order: the state ``apply`` folds events into.

Plain msgspec Structs, not pydantic models: trackline alone writes this state, so it is not
validated at each assignment or construction (``apply`` sets some ten fields a scan), and it is
stored through ``models.codec``. The JSON is the same as pydantic's was: stored states of
either kind read alike.
"""

from __future__ import annotations

from datetime import date, datetime

from msgspec import Struct, field

from models.effects import AlertKind, NotificationCommand
from models.events import PackageStatus
from models.formats import OpenEnum


class OrderStatus(OpenEnum):
    placed = "placed"
    processing = "processing"  # the fulfillment center is picking and packing
    partially_shipped = "partially_shipped"
    shipped = "shipped"
    partially_delivered = "partially_delivered"
    delivered = "delivered"
    cancelled = "cancelled"
    return_requested = "return_requested"
    returned = "returned"
    refunded = "refunded"


class TimelineEntry(Struct, kw_only=True):
    status: PackageStatus
    raw_code: str = ""
    message: str = ""
    location: str = ""
    occurred_at: datetime
    event_id: str = ""  # the scan's id: a resent scan is known by it, however long the journey


class PackageState(Struct, kw_only=True):
    package_id: str
    is_return: bool = False  # a return shipment back to the fulfillment center
    carrier: str = ""
    tracking_number: str = ""
    service: str = ""
    skus: list[str] = field(default_factory=list)
    status: PackageStatus = PackageStatus.info_received
    status_at: datetime | None = None  # event time of the scan that set ``status``
    status_seen_at: datetime | None = None  # when trackline saw that scan
    exception_reason: str = ""
    shipped_at: datetime | None = None  # label created and handed over
    accepted_at: datetime | None = None  # the carrier's first acceptance scan
    last_scan_at: datetime | None = None  # newest scan by event time, whatever its status
    scan_source: str = ""  # the feed (easypost, x12-214, ...) of the newest scan: its allowance applies
    scan_delay_seconds: float = 0.0  # how late that scan arrived: a feed late for this package stays late
    # The carrier's usual silence on the level (models.transit; None: not measured), as of the
    # order's last event: in_transit_stale's measure. Kept while its alert is open, so that a
    # new model version neither moves an open alert's deadline nor closes and reopens it.
    usual_silence_hours: float | None = None
    out_for_delivery_at: datetime | None = None
    first_attempt_at: datetime | None = None  # first delivery attempt: delivered or failed
    delivered_at: datetime | None = None
    # Estimates: the carrier's first and latest, and ours (what the customer was last told
    # is ``notified_estimate``).
    carrier_original_estimate: date | None = None
    carrier_current_estimate: date | None = None
    carrier_estimate_at: datetime | None = None  # event time of the scan that set the current one
    estimate_seen_at: datetime | None = None  # when trackline saw that scan
    estimated_delivery: date | None = None  # what the customer is shown
    estimate_source: str = ""  # promise | carrier | carrier_corrected | carrier_typical | model
    estimate_confidence: float | None = None  # the model's: share of similar packages delivered by then
    notified_estimate: date | None = None
    revisions_told: int = 0  # estimate_revised notices sent for this package
    # Our own estimate (models.transit), refreshed at each event from time in transit.
    model_estimate: date | None = None
    model_confidence: float | None = None
    model_key: str = ""  # "<lane key>@<version>" of the model it came from
    model_estimate_recorded: date | None = None  # the model's date in the last estimate history row
    model_preferred: bool = False  # that model was measured more accurate than the carrier on its lane
    # Without a model yet: the carrier's usual date on the level (models.transit.carrier_typical).
    carrier_typical_estimate: date | None = None
    # The carrier's date moved by its measured usual miss (``corrected_carrier_date``), shown
    # where the carrier's date is; None: no miss measured, the carrier's date as it gave it.
    carrier_corrected_estimate: date | None = None
    late_probability: float | None = None  # of arriving after the promise, by the model
    predicted_late_since: datetime | None = None  # when that passed the threshold (predicted_late alert)
    # On the promised day, the moment from which not being out for delivery yet makes the
    # package likely late (predicted_late too): models.transit.not_out_for_delivery_by.
    not_out_for_delivery_by: datetime | None = None
    # (the scan's local date, the carrier's date, the model's date) at each scan before delivery:
    # measures both at delivery, and how the carrier misses at each lead.
    scan_estimates: list[tuple[date, date | None, date | None]] = field(default_factory=list)
    # Where the package waits to be collected, while it does (the tracking page shows it).
    pickup_location: str = ""
    pickup_code: str = ""
    pickup_deadline: datetime | None = None
    timeline: list[TimelineEntry] = field(default_factory=list)


class AlertState(Struct, kw_only=True):
    alert_kind: AlertKind
    package_id: str = ""
    due_at: datetime
    opened_at: datetime
    closed_at: datetime | None = None
    detail: str = ""


class OrderState(Struct, kw_only=True):
    order_id: str
    status: OrderStatus = OrderStatus.placed
    customer_id: str = ""
    seller_id: str = ""
    fulfillment_center: str = ""
    service_level: str = ""
    delivery_time_zone: str = "UTC"
    destination_region: str = ""  # "US-CA" (models.events.Destination.lane_region); "" if not given
    destination_postal_prefix: str = ""
    promised_delivery_date: date | None = None
    ship_by: datetime | None = None
    ordered_skus: list[str] = field(default_factory=list)
    placed_at: datetime | None = None
    processing_at: datetime | None = None
    cancelled_at: datetime | None = None
    return_requested_at: datetime | None = None
    refunded_at: datetime | None = None
    packages: dict[str, PackageState] = field(default_factory=dict)
    alerts: dict[str, AlertState] = field(default_factory=dict)  # "<package>:<kind>" -> newest
    next_deadline: datetime | None = None  # when time-driven rules must look again
    notified: list[str] = field(default_factory=list)  # milestone keys already announced
    # Commands decided before the order was known (a package shipped before order_placed
    # arrived): they go out once the order names its customer, never with an empty one.
    waiting_for_order: list[NotificationCommand] = field(default_factory=list)
    seen_event_ids: list[str] = field(default_factory=list)
    # Set by the tick at which retention removes the order (models.retention): the worker then
    # stores a marker in its place.
    expired_at: datetime | None = None

    def outbound(self) -> list[PackageState]:
        return [p for p in self.packages.values() if not p.is_return]

    def returns(self) -> list[PackageState]:
        return [p for p in self.packages.values() if p.is_return]

    def all_items_shipped(self) -> bool:
        """Every ordered item is in some outbound package (one that names no items carries them all)."""
        packages = self.outbound()
        if not self.ordered_skus or any(not p.skus for p in packages):
            return bool(packages)
        return set(self.ordered_skus) <= {sku for p in packages for sku in p.skus}

    def open_alerts(self) -> list[AlertState]:
        return [a for a in self.alerts.values() if a.closed_at is None]
