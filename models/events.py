"""Canonical events: what the pipeline knows after an adapter has read raw bytes.

Every event carries two times: ``occurred_at`` (when it happened, as the source says;
this decides order) and ``ingested_at`` (when trackline first saw it).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from models.carrier_codes import carrier_code
from models.formats import OpenEnum


class Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class FulfillmentContract(Contract):
    """What every event from order management and fulfillment centers carries."""

    event_id: str = Field(min_length=1)
    order_id: str = Field(min_length=1)
    # With an offset: a time without one names no instant, and every rule compares instants.
    occurred_at: AwareDatetime
    # Set by trackline from the Kafka record's timestamp; producers leave it out.
    ingested_at: datetime | None = Field(default=None, description="set by trackline; producers omit it")


def known_time_zone(value: str) -> str:
    """``value`` if it names an IANA zone; a ValueError (a validation error) otherwise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ZoneInfo opens a file named by the key: a directory ("America") or an overlong
        # name is an OSError, which pydantic would not turn into a ValidationError.
        raise ValueError(f"unknown IANA time zone {value[:64]!r}") from None
    return value


class ServiceLevel(OpenEnum):
    same_day = "same_day"
    one_day = "one_day"
    two_day = "two_day"
    standard = "standard"
    locker_pickup = "locker_pickup"


class PackageStatus(OpenEnum):
    info_received = "info_received"  # label created, carrier told, nothing scanned yet
    picked_up = "picked_up"
    in_transit = "in_transit"
    out_for_delivery = "out_for_delivery"
    attempt_failed = "attempt_failed"
    available_for_pickup = "available_for_pickup"
    delivered = "delivered"
    exception = "exception"
    returning_to_sender = "returning_to_sender"
    returned_to_sender = "returned_to_sender"
    cancelled = "cancelled"
    unknown = "unknown"


class ExceptionReason(OpenEnum):
    """Why a package is held up, in words a customer can act on (see models.exception_reasons)."""

    address_issue = "address_issue"
    damaged = "damaged"
    lost = "lost"
    refused = "refused"
    customs = "customs"
    weather = "weather"
    delayed = "delayed"
    returned_to_sender = "returned_to_sender"
    recipient_unavailable = "recipient_unavailable"  # nobody there to receive or sign
    missed_delivery = "missed_delivery"  # the carrier did not make the attempt it planned
    business_closed = "business_closed"
    contact_carrier = "contact_carrier"  # the carrier asks the customer to get in touch
    package_held = "package_held"  # held by the carrier until someone acts (not a pickup point)
    payment_due = "payment_due"  # duties or charges to pay before delivery
    other = "other"


class ScanFlag(OpenEnum):
    """What an adapter had to assume to read a scan; kept on the scan and in history."""

    time_zone_assumed_utc = "time_zone_assumed_utc"  # no offset and no zone derivable: read as UTC
    time_zone_from_location = "time_zone_from_location"  # no offset: the location's zone was used
    time_repeated_hour = "time_repeated_hour"  # a local time in the hour daylight saving repeats
    time_nonexistent = "time_nonexistent"  # a local time daylight saving skips: moved forward


class OrderItem(Contract):
    sku: str = Field(min_length=1)
    quantity: int = Field(ge=1)
    description: str = ""


class Destination(Contract):
    """Where an order goes, as coarse as a delivery lane needs (issue 13): never the street.
    trackline keeps the country, the region and the postal code's first three characters."""

    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, e.g. US")
    region: str = Field(default="", max_length=8, description="state or province code (ISO 3166-2 without the "
                                                                "country), e.g. CA")
    postal_code: str = Field(default="", max_length=16)

    def lane_region(self) -> str:
        """"US-CA": the destination side of a lane (the origin is the fulfillment center)."""
        return f"{self.country}-{self.region.strip().upper()}" if self.region.strip() else self.country

    def postal_prefix(self) -> str:
        return self.postal_code.strip().upper()[:3]


class OrderPlaced(FulfillmentContract):
    """The order-management system accepted an order."""

    type: Literal["order_placed"] = "order_placed"
    customer_id: str = Field(min_length=1)
    seller_id: str = Field(min_length=1)
    fulfillment_center: str = Field(min_length=1)
    service_level: ServiceLevel
    promised_delivery_date: date
    ship_by: AwareDatetime
    items: list[OrderItem] = Field(min_length=1)
    # IANA zone of the delivery address: "end of the local day" and "promised date" are
    # judged there. An unknown zone is rejected, never read as UTC.
    delivery_time_zone: str = "UTC"
    destination: Destination | None = None  # optional: lanes (origin -> region) need it

    _known_zone = field_validator("delivery_time_zone")(lambda value: known_time_zone(value))


class PackageShipped(FulfillmentContract):
    """A fulfillment center handed a package to a carrier."""

    type: Literal["package_shipped"] = "package_shipped"
    package_id: str = Field(min_length=1)
    carrier: str = Field(min_length=1)
    tracking_number: str = Field(min_length=1)
    service: str = ""
    skus: list[str] = Field(default_factory=list)  # empty: the whole order is in this package


class OrderProcessing(FulfillmentContract):
    """The fulfillment center started picking and packing the order."""

    type: Literal["order_processing"] = "order_processing"


class OrderCancelled(FulfillmentContract):
    type: Literal["order_cancelled"] = "order_cancelled"
    reason: str = ""


class ReturnRequested(FulfillmentContract):
    """The customer started a return; a return label may come with it."""

    type: Literal["return_requested"] = "return_requested"
    return_id: str = Field(min_length=1)
    skus: list[str] = Field(default_factory=list)
    reason: str = ""
    carrier: str = ""  # the return label's carrier and tracking number, if one was issued
    tracking_number: str = ""


class ReturnReceived(FulfillmentContract):
    """The returned items arrived back at the fulfillment center."""

    type: Literal["return_received"] = "return_received"
    return_id: str = Field(min_length=1)


class RefundIssued(FulfillmentContract):
    type: Literal["refund_issued"] = "refund_issued"
    return_id: str = ""
    amount: str = ""  # a decimal string, as payment systems send it
    currency: str = ""


FulfillmentEvent = Annotated[
    OrderPlaced | OrderProcessing | PackageShipped | OrderCancelled | ReturnRequested | ReturnReceived | RefundIssued,
    Field(discriminator="type"),
]


class CarrierScan(Contract):
    """One tracking event from a carrier, in trackline's status model.

    ``order_id`` and ``package_id`` are empty until the scan router has matched the
    tracking number to the package a fulfillment center announced.
    """

    type: Literal["carrier_scan"] = "carrier_scan"
    event_id: str
    source: str  # the adapter that read it: easypost, aftership, ...
    carrier: str
    tracking_number: str
    status: PackageStatus
    raw_code: str  # the carrier's own status code, kept beside ours
    raw_message: str = ""
    occurred_at: datetime
    ingested_at: datetime
    location: str = ""
    estimated_delivery: date | None = None
    pickup_code: str = ""  # for lockers and pickup points, when the carrier sends one
    pickup_deadline: datetime | None = None
    # A detail the customer (or merchant) must act on, or the reason an attempt failed,
    # whatever the main status says: becomes one ``exception`` update per reason.
    action_reason: ExceptionReason | None = None
    flags: list[ScanFlag] = Field(default_factory=list)
    order_id: str = ""
    package_id: str = ""


class ClockTick(Contract):
    """The clock reached a deadline of this order: time-driven rules run at ``occurred_at``.

    Sent by the worker's deadline timer through the order-events topic, so the order's
    state has one writer and ticks are replayed like any other event.
    """

    type: Literal["clock_tick"] = "clock_tick"
    event_id: str
    order_id: str
    occurred_at: datetime
    ingested_at: datetime | None = None


FulfillmentEventT = (OrderPlaced | OrderProcessing | PackageShipped | OrderCancelled | ReturnRequested
                     | ReturnReceived | RefundIssued)

OrderEvent = Annotated[
    OrderPlaced | OrderProcessing | PackageShipped | OrderCancelled | ReturnRequested | ReturnReceived | RefundIssued
    | CarrierScan | ClockTick,
    Field(discriminator="type"),
]

fulfillment_event_adapter: TypeAdapter[FulfillmentEventT] = TypeAdapter(FulfillmentEvent)
order_event_adapter: TypeAdapter[FulfillmentEventT | CarrierScan | ClockTick] = TypeAdapter(OrderEvent)
order_events_batch_adapter = TypeAdapter(list[OrderEvent])


def sent_key(scan: CarrierScan) -> str:
    """A scan as news for its order: its id, and the carrier's estimate it carries. Carriers
    resend a known scan when only the tracker's estimate changed (EasyPost's
    ``est_delivery_date``, AfterShip's ``expected_delivery``, Shippo's ``eta``): that resend is
    news, a resend with the same estimate is not."""
    if scan.estimated_delivery is None:
        return scan.event_id
    return f"{scan.event_id}|{scan.estimated_delivery.isoformat()}"


def tracking_key(carrier: str, tracking_number: str) -> str:
    """Carriers recycle tracking numbers across carriers, so the carrier is part of the key."""
    return f"{normalize_carrier(carrier)}:{tracking_number.strip().upper()}"


def normalize_carrier(carrier: str) -> str:
    """trackline's code for a carrier, from any alias (models.carrier_codes)."""
    return carrier_code(carrier)
