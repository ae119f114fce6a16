"""The customer's tracking page, as pure functions: its token and what it shows.

The token is ``base64url(order_id) "." key_id "." base64url(HMAC-SHA256(key, order_id))``:
the order id in it lets any worker route the request to the one that owns the order, the key
id lets keys rotate (old links keep working while their key is configured), and the HMAC means
nobody can make a token for an order id they guess. A token that does not check out reads as
"no such page", the same answer as an unknown order, so nothing is revealed either way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from models.effects import tracking_url
from models.events import ExceptionReason, PackageStatus
from models.exception_reasons import CUSTOMER_WORDS
from models.state import OrderState, OrderStatus, PackageState


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def tracking_token(order_id: str, key_id: str, key: str) -> str:
    mac = hmac.new(key.encode(), order_id.encode(), hashlib.sha256).digest()
    return f"{_b64(order_id.encode())}.{key_id}.{_b64(mac)}"


def order_in_token(token: str, keys: Mapping[str, str]) -> str | None:
    """The order id a genuine token names, or None (forged, malformed, or its key retired)."""
    parts = token.split(".")
    if len(parts) != 3 or parts[1] not in keys:
        return None
    try:
        order_id = _unb64(parts[0]).decode()
        given = _unb64(parts[2])
    except (binascii.Error, ValueError):
        return None
    expected = hmac.new(keys[parts[1]].encode(), order_id.encode(), hashlib.sha256).digest()
    return order_id if order_id and hmac.compare_digest(expected, given) else None


def tracking_page_url(base_url: str, order_id: str, key_id: str, key: str) -> str:
    return f"{base_url.rstrip('/')}/track/{tracking_token(order_id, key_id, key)}"


ORDER_WORDS = {
    OrderStatus.placed: "Order received",
    OrderStatus.processing: "Being prepared",
    OrderStatus.partially_shipped: "Partly shipped",
    OrderStatus.shipped: "On its way",
    OrderStatus.partially_delivered: "Partly delivered",
    OrderStatus.delivered: "Delivered",
    OrderStatus.cancelled: "Cancelled",
    OrderStatus.return_requested: "Return requested",
    OrderStatus.returned: "Returned",
    OrderStatus.refunded: "Refunded",
}
PACKAGE_WORDS = {
    PackageStatus.info_received: "Label created, waiting for the carrier",
    PackageStatus.picked_up: "Picked up by the carrier",
    PackageStatus.cancelled: "Shipment cancelled",
    PackageStatus.in_transit: "In transit",
    PackageStatus.out_for_delivery: "Out for delivery",
    PackageStatus.available_for_pickup: "Ready for pickup",
    PackageStatus.attempt_failed: "Delivery attempt failed",
    PackageStatus.delivered: "Delivered",
    PackageStatus.exception: "Problem with the delivery",
    PackageStatus.returning_to_sender: "Returning to sender",
    PackageStatus.returned_to_sender: "Returned to sender",
    PackageStatus.unknown: "Status update from the carrier",
}


def _local(at: datetime | None, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%a %d %b %Y, %H:%M") if at else ""


def _day(day: date | None) -> str:
    return day.strftime("%a %d %b %Y") if day else ""


def page_view(state: OrderState, alerts: bool = False) -> dict[str, Any]:
    """What the page shows, in words and in the delivery address's time zone (the customer's
    local time where the package goes). ``alerts``: the support view adds the open detections."""
    zone = ZoneInfo(state.delivery_time_zone or "UTC")
    packages = []
    for package in sorted(state.packages.values(), key=lambda p: (p.is_return, p.package_id)):
        packages.append(_package_view(package, zone))
    estimates = [p.estimated_delivery for p in state.outbound() if p.estimated_delivery and not p.delivered_at]
    estimate = max(estimates) if estimates else None
    view: dict[str, Any] = {
        "order_id": state.order_id,
        "status": ORDER_WORDS.get(state.status, state.status.value.replace("_", " ").capitalize()),
        "promised": _day(state.promised_delivery_date),
        "estimate": _day(estimate),
        "estimate_against_promise": _against(estimate, state.promised_delivery_date),
        "time_zone": str(zone),
        "packages": packages,
    }
    if alerts:
        view["alerts"] = [{"kind": a.alert_kind.value.replace("_", " "), "package_id": a.package_id,
                           "due_at": _local(a.due_at, zone), "opened_at": _local(a.opened_at, zone),
                           "detail": a.detail} for a in state.open_alerts()]
    return view


def _against(estimate: date | None, promised: date | None) -> str:
    if estimate is None or promised is None:
        return ""
    days = (estimate - promised).days
    if days <= 0:
        return "on time" if days == 0 else f"{-days} day{'s' if days < -1 else ''} early"
    return f"{days} day{'s' if days > 1 else ''} later than promised"


def _package_view(package: PackageState, zone: ZoneInfo) -> dict[str, Any]:
    todo = ""
    if package.status in (PackageStatus.exception, PackageStatus.attempt_failed,
                          PackageStatus.returning_to_sender) and package.exception_reason:
        try:
            reason = ExceptionReason(package.exception_reason)
        except ValueError:
            reason = ExceptionReason.other
        happened, todo = CUSTOMER_WORDS[reason]
        todo = f"{happened} {todo}"
    pickup = None
    if package.status is PackageStatus.available_for_pickup:
        pickup = {"place": package.pickup_location, "code": package.pickup_code,
                  "deadline": _local(package.pickup_deadline, zone)}
    return {
        "package_id": package.package_id,
        "kind": "Return" if package.is_return else "Package",
        "carrier": package.carrier,
        "tracking_number": package.tracking_number,
        "tracking_url": tracking_url(package.carrier, package.tracking_number) if package.tracking_number else "",
        "status": PACKAGE_WORDS.get(package.status, package.status.value),
        "status_at": _local(package.status_at, zone),
        "estimate": _day(package.estimated_delivery) if not package.delivered_at else "",
        "delivered_at": _local(package.delivered_at, zone),
        "what_to_do": todo,
        "pickup": pickup,
        # Newest first, as tracking pages show it.
        "timeline": [{"when": _local(e.occurred_at, zone), "what": e.message or PACKAGE_WORDS.get(e.status, ""),
                      "where": e.location} for e in sorted(package.timeline, key=lambda e: e.occurred_at,
                                                             reverse=True)],
    }
