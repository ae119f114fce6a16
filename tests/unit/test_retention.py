"""Retention by event time: when an order's state goes, and that it never goes too early."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from models.events import ClockTick
from models.order import apply
from models.retention import expires_at, marker_expires_at
from models.state import OrderState, OrderStatus, PackageState
from models.thresholds import Thresholds

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
RULES = Thresholds()


def delivered_order(feedback_asked: bool) -> OrderState:
    state = OrderState(order_id="ORD-R", status=OrderStatus.delivered, placed_at=T0)
    state.packages["P1"] = PackageState(package_id="P1", shipped_at=T0 + timedelta(hours=2),
                                        delivered_at=T0 + timedelta(days=2), status_at=T0 + timedelta(days=2))
    if feedback_asked:
        state.notified.append(":feedback_request")
    return state


def tick(order_id: str, at: datetime) -> ClockTick:
    return ClockTick(event_id=f"tick-{at.isoformat()}", order_id=order_id, occurred_at=at, ingested_at=at)


def test_a_delivered_order_stays_through_the_return_window() -> None:
    state = delivered_order(feedback_asked=True)
    assert expires_at(state, RULES) == T0 + timedelta(days=2) + timedelta(days=RULES.return_window_days)
    short_window = RULES.model_copy(update={"return_window_days": 0})
    assert expires_at(state, short_window) == T0 + timedelta(days=2 + RULES.keep_after_final_days)


def test_delivered_without_the_feedback_request_waits_for_the_idle_bound() -> None:
    state = delivered_order(feedback_asked=False)
    assert expires_at(state, RULES) == T0 + timedelta(days=2 + RULES.idle_expiry_days)


def test_cancelled_and_refunded_orders_go_after_the_keep_time() -> None:
    cancelled = OrderState(order_id="ORD-C", status=OrderStatus.cancelled, placed_at=T0,
                           cancelled_at=T0 + timedelta(hours=1))
    assert expires_at(cancelled, RULES) == T0 + timedelta(hours=1, days=RULES.keep_after_final_days)
    refunded = delivered_order(feedback_asked=True)
    refunded.status, refunded.refunded_at = OrderStatus.refunded, T0 + timedelta(days=5)
    # A refund closes the return window: kept for the keep time after it, not 30 days.
    assert expires_at(refunded, RULES) == T0 + timedelta(days=5 + RULES.keep_after_final_days)


def test_an_order_in_transit_goes_only_after_the_idle_bound_from_its_last_scan() -> None:
    state = OrderState(order_id="ORD-T", status=OrderStatus.shipped, placed_at=T0)
    state.packages["P1"] = PackageState(package_id="P1", shipped_at=T0, last_scan_at=T0 + timedelta(days=9))
    assert expires_at(state, RULES) == T0 + timedelta(days=9 + RULES.idle_expiry_days)
    assert expires_at(OrderState(order_id="ORD-EMPTY"), RULES) is None


def test_the_tick_at_expiry_removes_the_state_and_nothing_applies_after() -> None:
    state = delivered_order(feedback_asked=True)
    due = expires_at(state, RULES)
    assert due is not None
    early, effects = apply(state, tick("ORD-R", due - timedelta(seconds=1)))
    assert early.expired_at is None and early.next_deadline == due
    assert [e for e in effects if getattr(e, "status", "") == "expired"] == []
    gone, effects = apply(state, tick("ORD-R", due + timedelta(seconds=5)))
    assert gone.expired_at == due  # the moment in event time, whenever the tick came
    from models.effects import HistoryRecord
    assert [(e.record_type, e.previous_status) for e in effects
            if isinstance(e, HistoryRecord) and e.status == "expired"] == [("transition", "delivered")]
    assert gone.next_deadline == marker_expires_at(due, RULES)
    after, effects = apply(gone, tick("ORD-R", due + timedelta(days=1)))
    assert effects == [] and after.expired_at == gone.expired_at


def test_a_tick_for_an_order_already_removed_does_not_start_an_empty_one() -> None:
    # The marker's tombstone is written; a second tick for it (redelivered, or from a batch
    # replayed after a crash) finds no state and must leave none behind.
    from models.order import apply_batch

    tick = ClockTick(event_id="tick-late", order_id="ORD-GONE", occurred_at=T0, ingested_at=T0)
    outcome = apply_batch({"ORD-GONE": None}, [tick])
    assert outcome.changed == {} and outcome.effects == []
