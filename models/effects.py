"""What applying an event produces: notification commands, history records, tracking links."""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from models.events import Contract


class NotificationType(StrEnum):
    order_confirmed = "order_confirmed"
    shipped = "shipped"
    out_for_delivery = "out_for_delivery"
    delivered = "delivered"


class Channel(StrEnum):
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
    tracking_url: str = ""
    estimated_delivery: date | None = None
    location: str = ""


class HistoryRecord(Contract):
    """One row of the order's history, as ops and support read it in ClickHouse."""

    kind: Literal["history"] = "history"
    record_id: str
    record_type: Literal["event", "transition", "notification"]
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


class TrackingLink(Contract):
    """Announces which order a (carrier, tracking number) belongs to, for the scan router."""

    kind: Literal["tracking_link"] = "tracking_link"
    carrier: str
    tracking_number: str
    order_id: str
    package_id: str
    announced_at: datetime


Effect = NotificationCommand | HistoryRecord | TrackingLink


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
    template = _TRACKING_URLS.get(carrier.strip().lower().replace(" ", ""))
    if template is None:
        return f"https://track.trackline.dev/{carrier.strip().lower()}/{tracking_number}"
    return template.format(tracking_number)
