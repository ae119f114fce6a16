"""When an order's state may go: retention by event time, so a replay removes it at the same point.

An order is kept while anything can still happen to it that a customer or ops would want
trackline to know: until a while after its last terminal fact, never inside the return window,
and at most a long bound after its last event. After removal, a small marker remembers the
order for a while, so a late event for it is refused (``order_expired``) rather than starting
the order again from nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from models.effects import HistoryRecord, NotificationType, stable_id
from models.state import OrderState, OrderStatus
from models.thresholds import Thresholds

_FEEDBACK = f":{NotificationType.feedback_request.value}"


def last_fact_at(state: OrderState) -> datetime | None:
    """The event time of the newest fact the order holds."""
    times = [state.placed_at, state.processing_at, state.cancelled_at, state.return_requested_at, state.refunded_at]
    for package in state.packages.values():
        times += [package.shipped_at, package.last_scan_at, package.status_at, package.delivered_at]
    return max((t for t in times if t is not None), default=None)


def expires_at(state: OrderState, rules: Thresholds) -> datetime | None:
    """When the order's state is removed; None while it holds no fact at all."""
    last = last_fact_at(state)
    if last is None:
        return None
    keep = timedelta(days=rules.keep_after_final_days)
    when = last + timedelta(days=rules.idle_expiry_days)
    if state.status is OrderStatus.cancelled and state.cancelled_at:
        when = min(when, max(state.cancelled_at, last) + keep)
    elif state.status is OrderStatus.refunded and state.refunded_at:
        when = min(when, max(state.refunded_at, last) + keep)
    elif state.status is OrderStatus.delivered and _FEEDBACK in state.notified:
        when = min(when, last + keep)
    delivered = [p.delivered_at for p in state.outbound() if p.delivered_at]
    if delivered and state.status is not OrderStatus.refunded:  # a refund closes the return window
        when = max(when, max(delivered) + timedelta(days=rules.return_window_days))
    return when


def marker_expires_at(expired_at: datetime, rules: Thresholds) -> datetime:
    return expired_at + timedelta(days=rules.expired_marker_days)


def refused_for_expired(event: Any, expired_at: datetime) -> HistoryRecord:
    """The history row of an event that came after its order was removed."""
    return HistoryRecord(
        record_id=stable_id(event.event_id, "order_expired"), record_type="event", order_id=event.order_id,
        package_id=getattr(event, "package_id", ""), event_id=event.event_id,
        source=getattr(event, "source", "") or "fulfillment", carrier=getattr(event, "carrier", ""),
        tracking_number=getattr(event, "tracking_number", ""), status="order_expired",
        detail=f"the order's state was removed at {expired_at.isoformat()}",
        occurred_at=event.occurred_at, ingested_at=event.ingested_at or event.occurred_at)


def expiry_record(state: OrderState, expiry: datetime, now: datetime) -> HistoryRecord:
    return HistoryRecord(
        record_id=stable_id(state.order_id, "expired"), record_type="transition", order_id=state.order_id,
        status="expired", previous_status=state.status.value, detail="state removed by retention",
        occurred_at=expiry, ingested_at=now)
