"""Per-order state and the one rule that moves it: ``apply(state, event)``.

``apply`` is pure: it reads no clock and does no I/O. Events may arrive twice and out of
order; the event's own time decides which status is current, and each milestone is
announced to the customer at most once.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from models.effects import (
    Effect,
    HistoryRecord,
    NotificationCommand,
    NotificationType,
    TrackingLink,
    stable_id,
    tracking_url,
)
from models.events import (
    CarrierScan,
    OrderCancelled,
    OrderPlaced,
    PackageShipped,
    PackageStatus,
    normalize_carrier,
)

# Enough to absorb redelivery after a crash and webhook retries, small enough to keep
# state compact: older duplicates are still caught by the milestone and event-time rules.
SEEN_EVENTS_KEPT = 256
TIMELINE_KEPT = 64


class OrderStatus(StrEnum):
    placed = "placed"
    partially_shipped = "partially_shipped"
    shipped = "shipped"
    partially_delivered = "partially_delivered"
    delivered = "delivered"
    cancelled = "cancelled"


class TimelineEntry(BaseModel):
    status: PackageStatus
    raw_code: str = ""
    message: str = ""
    location: str = ""
    occurred_at: datetime


class PackageState(BaseModel):
    package_id: str
    carrier: str = ""
    tracking_number: str = ""
    service: str = ""
    skus: list[str] = Field(default_factory=list)
    status: PackageStatus = PackageStatus.info_received
    status_at: datetime | None = None  # event time of the scan that set ``status``
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    estimated_delivery: date | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)


class OrderState(BaseModel):
    order_id: str
    status: OrderStatus = OrderStatus.placed
    customer_id: str = ""
    seller_id: str = ""
    fulfillment_center: str = ""
    service_level: str = ""
    promised_delivery_date: date | None = None
    ship_by: datetime | None = None
    ordered_skus: list[str] = Field(default_factory=list)
    placed_at: datetime | None = None
    cancelled_at: datetime | None = None
    packages: dict[str, PackageState] = Field(default_factory=dict)
    notified: list[str] = Field(default_factory=list)  # milestone keys already announced
    seen_event_ids: list[str] = Field(default_factory=list)


Event = OrderPlaced | PackageShipped | OrderCancelled | CarrierScan


def apply(state: OrderState | None, event: Event) -> tuple[OrderState, list[Effect]]:
    """Fold one event into the order's state; return the new state and its effects.

    The state given is left as it was.
    """
    state = OrderState(order_id=event.order_id) if state is None else state.model_copy(deep=True)
    return state, apply_in_place(state, event)


def apply_in_place(state: OrderState, event: Event) -> list[Effect]:
    """``apply`` for a state the caller owns and lets change: no copy on the hot path."""
    if event.event_id in state.seen_event_ids:
        return []
    state.seen_event_ids.append(event.event_id)
    if len(state.seen_event_ids) > SEEN_EVENTS_KEPT:
        del state.seen_event_ids[:-SEEN_EVENTS_KEPT]
    effects: list[Effect] = [_event_record(event)]
    if isinstance(event, OrderPlaced):
        _on_placed(state, event, effects)
    elif isinstance(event, PackageShipped):
        _on_shipped(state, event, effects)
    elif isinstance(event, OrderCancelled):
        _on_cancelled(state, event, effects)
    else:
        _on_scan(state, event, effects)
    _derive_order_status(state, event, effects)
    return effects


def _on_placed(state: OrderState, event: OrderPlaced, effects: list[Effect]) -> None:
    state.customer_id = event.customer_id
    state.seller_id = event.seller_id
    state.fulfillment_center = event.fulfillment_center
    state.service_level = event.service_level.value
    state.promised_delivery_date = event.promised_delivery_date
    state.ship_by = event.ship_by
    state.placed_at = event.occurred_at
    state.ordered_skus = sorted({item.sku for item in event.items})
    if state.cancelled_at is None:
        _notify(state, effects, NotificationType.order_confirmed, event, package=None,
                estimated_delivery=event.promised_delivery_date)


def _on_shipped(state: OrderState, event: PackageShipped, effects: list[Effect]) -> None:
    package = state.packages.get(event.package_id) or PackageState(package_id=event.package_id)
    package.carrier = normalize_carrier(event.carrier)
    package.tracking_number = event.tracking_number
    package.service = event.service
    package.skus = list(event.skus)
    package.shipped_at = event.occurred_at
    state.packages[event.package_id] = package
    effects.append(TrackingLink(
        carrier=package.carrier, tracking_number=event.tracking_number,
        order_id=event.order_id, package_id=event.package_id, announced_at=event.occurred_at,
    ))
    _notify(state, effects, NotificationType.shipped, event, package=package,
            estimated_delivery=state.promised_delivery_date)


def _on_cancelled(state: OrderState, event: OrderCancelled, effects: list[Effect]) -> None:
    state.cancelled_at = event.occurred_at


def _on_scan(state: OrderState, event: CarrierScan, effects: list[Effect]) -> None:
    package = state.packages.get(event.package_id)
    if package is None:  # the router only forwards matched scans, but stay total
        package = PackageState(package_id=event.package_id or event.tracking_number,
                               carrier=event.carrier, tracking_number=event.tracking_number)
        state.packages[package.package_id] = package
    entry = TimelineEntry(status=event.status, raw_code=event.raw_code, message=event.raw_message,
                          location=event.location, occurred_at=event.occurred_at)
    package.timeline = sorted([*package.timeline, entry], key=lambda e: e.occurred_at)[-TIMELINE_KEPT:]
    if event.estimated_delivery is not None:
        package.estimated_delivery = event.estimated_delivery
    if event.status is PackageStatus.delivered and package.delivered_at is None:
        package.delivered_at = event.occurred_at
    # Event time decides: an older scan that arrives late joins the timeline only.
    if package.status_at is None or event.occurred_at >= package.status_at:
        previous = package.status
        if event.status is not PackageStatus.unknown:
            package.status = event.status
            package.status_at = event.occurred_at
        if package.status is not previous:
            effects.append(_transition(event, package.package_id, package.status, previous))
    if event.status is PackageStatus.out_for_delivery and package.delivered_at is None:
        _notify(state, effects, NotificationType.out_for_delivery, event, package=package,
                estimated_delivery=package.estimated_delivery)
    elif event.status is PackageStatus.delivered:
        _notify(state, effects, NotificationType.delivered, event, package=package,
                location=event.location)


def _derive_order_status(state: OrderState, event: Event, effects: list[Effect]) -> None:
    previous = state.status
    packages = list(state.packages.values())
    delivered = sum(1 for p in packages if p.delivered_at is not None)
    if state.cancelled_at is not None and delivered == 0:
        state.status = OrderStatus.cancelled
    elif packages and delivered == len(packages):
        state.status = OrderStatus.delivered
    elif delivered:
        state.status = OrderStatus.partially_delivered
    elif packages:
        state.status = (OrderStatus.shipped if _all_items_shipped(state, packages)
                        else OrderStatus.partially_shipped)
    else:
        state.status = OrderStatus.placed
    if state.status is not previous:
        effects.append(_transition(event, "", state.status, previous))


def _all_items_shipped(state: OrderState, packages: list[PackageState]) -> bool:
    # A package that names no items is taken to carry the whole order.
    if not state.ordered_skus or any(not p.skus for p in packages):
        return True
    shipped = {sku for p in packages for sku in p.skus}
    return set(state.ordered_skus) <= shipped


def _notify(state: OrderState, effects: list[Effect], type_: NotificationType, event: Event,
            *, package: PackageState | None, estimated_delivery: date | None = None,
            location: str = "") -> None:
    package_id = package.package_id if package else ""
    milestone = f"{package_id}:{type_.value}"
    if milestone in state.notified:
        return
    state.notified.append(milestone)
    command = NotificationCommand(
        command_id=stable_id(state.order_id, package_id, type_.value),
        type=type_,
        order_id=state.order_id,
        package_id=package_id,
        customer_id=state.customer_id,
        occurred_at=event.occurred_at,
        caused_by_ingested_at=_ingested_at(event),
        carrier=package.carrier if package else "",
        tracking_number=package.tracking_number if package else "",
        tracking_url=tracking_url(package.carrier, package.tracking_number) if package else "",
        estimated_delivery=estimated_delivery,
        location=location,
    )
    effects.append(command)
    effects.append(HistoryRecord(
        record_id=stable_id(command.command_id, "notification"),
        record_type="notification", order_id=state.order_id, package_id=package_id,
        event_id=event.event_id, status=type_.value, carrier=command.carrier,
        tracking_number=command.tracking_number, detail=command.command_id,
        occurred_at=event.occurred_at, ingested_at=_ingested_at(event),
    ))


def _ingested_at(event: Event) -> datetime:
    return event.ingested_at or event.occurred_at


def _event_record(event: Event) -> HistoryRecord:
    scan = event if isinstance(event, CarrierScan) else None
    return HistoryRecord(
        record_id=stable_id(event.event_id, "event"),
        record_type="event",
        order_id=event.order_id,
        package_id=getattr(event, "package_id", ""),
        event_id=event.event_id,
        source=scan.source if scan else "fulfillment",
        carrier=normalize_carrier(getattr(event, "carrier", "")),
        tracking_number=getattr(event, "tracking_number", ""),
        status=scan.status.value if scan else event.type,
        raw_code=scan.raw_code if scan else "",
        detail=scan.raw_message if scan else "",
        occurred_at=event.occurred_at,
        ingested_at=_ingested_at(event),
    )


def _transition(event: Event, package_id: str, status: StrEnum, previous: StrEnum) -> HistoryRecord:
    return HistoryRecord(
        record_id=stable_id(event.event_id, "transition", package_id),
        record_type="transition", order_id=event.order_id, package_id=package_id,
        event_id=event.event_id, status=status.value, previous_status=previous.value,
        occurred_at=event.occurred_at, ingested_at=_ingested_at(event),
    )


def apply_batch(states: dict[str, OrderState | None], events: list[Event]
                ) -> tuple[dict[str, OrderState], list[Effect]]:
    """Apply events in arrival order; return the states that changed and all effects.

    Lets the shell read and write each order's state once per batch, not once per event.
    The states given are the shell's own working copies and are updated in place.
    """
    changed: dict[str, OrderState] = {}
    effects: list[Effect] = []
    for event in events:
        state = states.get(event.order_id)
        if state is None:
            state = states[event.order_id] = OrderState(order_id=event.order_id)
        produced = apply_in_place(state, event)
        if produced:
            changed[event.order_id] = state
            effects.extend(produced)
    return changed, effects


def order_view(state: OrderState) -> dict:
    """What support and customers see for one order: status, packages, dates."""
    return {
        "order_id": state.order_id,
        "status": state.status.value,
        "placed_at": state.placed_at,
        "promised_delivery_date": state.promised_delivery_date,
        "service_level": state.service_level,
        "packages": [
            {
                "package_id": p.package_id,
                "carrier": p.carrier,
                "tracking_number": p.tracking_number,
                "tracking_url": tracking_url(p.carrier, p.tracking_number) if p.tracking_number else "",
                "status": p.status.value,
                "status_at": p.status_at,
                "estimated_delivery": p.estimated_delivery,
                "delivered_at": p.delivered_at,
                "timeline": [e.model_dump() for e in p.timeline],
            }
            for p in state.packages.values()
        ],
        "notified": list(state.notified),
    }
