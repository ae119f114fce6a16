"""What applying an event produces: notification commands, history records, tracking links."""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Literal
from urllib.parse import quote

from msgspec import Struct, field
from pydantic import Field

from models.events import Contract
from models.formats import OpenEnum
from models.transit import TransitObserved, TransitStarted


class NotificationType(OpenEnum):
    """Every update a customer can get, in the order a journey meets them."""

    order_confirmed = "order_confirmed"
    estimate_set = "estimate_set"  # the delivery date promised at purchase
    shipped = "shipped"
    estimate_revised = "estimate_revised"  # only when the date changes
    delayed = "delayed"  # with the reason and the new date
    out_for_delivery = "out_for_delivery"
    attempt_failed = "attempt_failed"  # with what happens next
    ready_for_pickup = "ready_for_pickup"  # place, code, deadline
    delivered = "delivered"  # where it was left
    exception = "exception"  # damaged, lost, address problem, returned: what to do
    return_started = "return_started"
    return_in_transit = "return_in_transit"
    return_received = "return_received"
    refund_issued = "refund_issued"
    feedback_request = "feedback_request"


class AlertKind(OpenEnum):
    """What ops are told about: delays and stale tracking, found by deadline or by event."""

    warehouse_delay = "warehouse_delay"  # not shipped by the ship-by time
    pickup_delay_1 = "pickup_delay_1"  # label created, no carrier acceptance scan yet
    pickup_delay_2 = "pickup_delay_2"  # ... and still none at the second threshold
    in_transit_stale = "in_transit_stale"  # no scan for longer than the threshold
    estimate_after_promise = "estimate_after_promise"
    predicted_late = "predicted_late"  # our model: likely to miss the promise, while there is time to act
    promise_missed = "promise_missed"
    out_for_delivery_overdue = "out_for_delivery_overdue"  # not delivered by end of local day
    presumed_lost = "presumed_lost"
    carrier_exception = "carrier_exception"  # the carrier reported an exception
    unmatched_scans = "unmatched_scans"  # a feed's scans found no order: often a carrier named two ways


class Channel(OpenEnum):
    email = "email"
    sms = "sms"
    push = "push"
    file = "file"


class NotificationCommand(Contract):
    """An instruction to tell a customer something; consumed by notification workers.

    ``command_id`` is derived from the order, package and milestone only, so a replay
    of the same events yields the same id and workers can drop what they already sent.
    """

    kind: Literal["notification"] = "notification"
    command_id: str
    type: NotificationType
    order_id: str
    package_id: str = ""
    customer_id: str
    channels: list[Channel] = Field(default_factory=lambda: [Channel.email])
    occurred_at: datetime  # when the milestone happened
    caused_by_ingested_at: datetime  # when trackline saw the event that caused it
    carrier: str = ""
    tracking_number: str = ""
    tracking_url: str = ""  # the carrier's tracking page
    # trackline's tracking page for this order (``/track/<token>``); empty unless a public
    # base URL and a key are configured (TRACKLINE_TRACKING_PAGE_BASE_URL, ..._KEYS).
    tracking_page_url: str = ""
    estimated_delivery: date | None = None
    previous_estimate: date | None = None
    # Where ``estimated_delivery`` comes from: "promise", "carrier", "carrier_corrected" (the
    # carrier's date moved by its measured usual miss, where the carrier's date is shown),
    # "carrier_typical" (before trackline has a model of the lane: the carrier's usual date for
    # such packages) or "model" (trackline's own model of the lane, models.transit), and for the
    # model, the share of similar packages delivered by that date.
    estimate_source: str = ""
    estimate_confidence: float | None = None
    location: str = ""
    reason: str = ""  # why: the delay, the exception, the failed attempt
    next_step: str = ""  # what happens next or what the customer can do
    pickup_code: str = ""
    pickup_deadline: datetime | None = None
    refund_amount: str = ""
    refund_currency: str = ""
    # Set from the customer's preferences on the way out: never None for a command a
    # notification worker receives. A command due in quiet hours waits until send_after.
    send_after: datetime | None = None
    locale: str = ""
    # After this instant the update is old news (a "shipped" seen days late, an "out for
    # delivery" after its day): the policy records it as "suppressed: stale" instead of sending.
    stale_after: datetime | None = None


class Alert(Contract):
    """A delay or stale-tracking detection, opened when its deadline passed, closed when cleared."""

    kind: Literal["alert"] = "alert"
    alert_id: str
    alert_kind: AlertKind
    order_id: str
    package_id: str = ""
    state: Literal["open", "closed"]
    due_at: datetime  # the deadline that passed (or the event time for event-found ones)
    at: datetime  # when it was opened or closed
    detail: str = ""
    carrier: str = ""
    service_level: str = ""


class HistoryRecord(Struct, frozen=True, kw_only=True):
    """One row of the order's history, as ops and support read it in ClickHouse.

    A msgspec Struct, not a pydantic model: trackline alone writes it, two or three per event,
    and validating each one cost more than the rule that made it (``models.codec`` writes it).
    """

    kind: Literal["history"] = "history"
    record_id: str
    # notification rows: status = update type, detail = outcome (queued, deferred until
    # ..., suppressed: opted_out); alert rows: status = alert kind, previous_status = state;
    # estimate rows: status = source, detail = our estimate; shipment rows: one per package
    # and milestone (shipped, delivered) with the facts the performance dashboards need;
    # delivery rows: what a notification worker did with a command (written by notifiers).
    record_type: Literal["event", "transition", "notification", "alert", "estimate", "shipment", "delivery"]
    order_id: str
    package_id: str = ""
    event_id: str = ""
    source: str = ""
    carrier: str = ""
    tracking_number: str = ""
    status: str = ""
    previous_status: str = ""
    raw_code: str = ""
    detail: str = ""
    occurred_at: datetime
    ingested_at: datetime
    # Typed facts per record type, read into their own tables by ClickHouse views. Never a
    # customer's e-mail address or phone number: customers appear by id only.
    attributes: dict[str, str] = field(default_factory=dict)


class TrackingLink(Contract):
    """Announces which order a (carrier, tracking number) belongs to, for the scan router."""

    kind: Literal["tracking_link"] = "tracking_link"
    carrier: str
    tracking_number: str
    order_id: str
    package_id: str
    announced_at: datetime
    # The order was removed by retention and its marker is gone: the router forgets the link.
    removed: bool = False


Effect = NotificationCommand | HistoryRecord | TrackingLink | Alert | TransitObserved | TransitStarted


def stable_id(*parts: str) -> str:
    """A short deterministic id: the same inputs give the same id on every replay."""
    return hashlib.blake2b("|".join(parts).encode(), digest_size=12).hexdigest()


_TRACKING_URLS = {
    "usps": "https://tools.usps.com/go/TrackConfirmAction?tLabels={}",
    "ups": "https://www.ups.com/track?tracknum={}",
    "fedex": "https://www.fedex.com/fedextrack/?trknbr={}",
    "dhl": "https://www.dhl.com/en/express/tracking.html?AWB={}",
    "dhlexpress": "https://www.dhl.com/en/express/tracking.html?AWB={}",
}


def tracking_url(carrier: str, tracking_number: str) -> str:
    """The carrier's own tracking page, for the carriers whose address is known; empty otherwise
    (no made-up domain: trackline's own page is ``tracking_page_url``)."""
    template = _TRACKING_URLS.get(carrier.strip().lower().replace(" ", ""))
    return template.format(quote(tracking_number, safe="")) if template else ""
