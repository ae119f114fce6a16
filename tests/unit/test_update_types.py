"""Every update a customer can get, from purchase to feedback, and the order status with it."""

from __future__ import annotations

from datetime import date, timedelta

from models.effects import NotificationCommand, TrackingLink
from models.events import (
    OrderProcessing,
    PackageStatus,
    RefundIssued,
    ReturnReceived,
    ReturnRequested,
)
from models.order import OrderStatus, order_view
from tests.conftest import at, placed, run, scan, shipped, tick

S = PackageStatus
HOUR = 60


def commands(effects, type_=None):
    return [c for c in effects if isinstance(c, NotificationCommand) and (type_ is None or c.type.value == type_)]


def test_processing_comes_between_placed_and_shipped():
    processing = OrderProcessing(event_id="proc", order_id="ORD-1", occurred_at=at(20))
    state, _ = run([placed(), processing])
    assert state.status is OrderStatus.processing
    state, _ = run([shipped()], state)
    assert state.status is OrderStatus.shipped


def test_failed_attempt_says_what_happens_next_once_per_day():
    state, effects = run([placed(), shipped(), scan(S.out_for_delivery, 1000),
                          scan(S.attempt_failed, 1100, raw_message="Recipient not available", location="Austin, TX"),
                          scan(S.attempt_failed, 1110, raw_message="Recipient not available")])
    (attempt,) = commands(effects, "attempt_failed")
    assert attempt.reason == "Recipient not available" and "try again" in attempt.next_step
    assert state.packages["P1"].first_attempt_at == at(1100)


def test_ready_for_pickup_names_the_place_the_code_and_the_deadline():
    _, effects = run([placed(), shipped(), scan(S.available_for_pickup, 1500, location="Locker 12, Main St",
                                                 pickup_code="4711")])
    (pickup,) = commands(effects, "ready_for_pickup")
    assert (pickup.location, pickup.pickup_code) == ("Locker 12, Main St", "4711")
    assert pickup.pickup_deadline == at(1500) + timedelta(days=7)  # two-day service holds 7 days


def test_carrier_exception_says_what_went_wrong_and_what_the_customer_can_do():
    state, effects = run([placed(), shipped(), scan(S.in_transit, 200),
                          scan(S.exception, 900, raw_code="failure/damaged", raw_message="Package damaged")])
    (exception,) = commands(effects, "exception")
    assert exception.reason == "damaged" and "replacement" in exception.next_step
    assert [a["kind"] for a in order_view(state)["open_alerts"]] == ["carrier_exception"]
    state, effects = run([scan(S.in_transit, 1000)], state)
    assert order_view(state)["open_alerts"] == []  # it moved again: the alert closes


def test_returned_to_sender_is_an_exception_the_customer_hears_once():
    _, effects = run([placed(), shipped(), scan(S.in_transit, 200),
                      scan(S.returning_to_sender, 900, raw_code="Exception_010"),
                      scan(S.returned_to_sender, 3000, raw_code="Exception_011")])
    assert [c.reason for c in commands(effects, "exception")] == ["returned_to_sender"]


def test_a_return_from_request_to_refund():
    delivered = [placed(), shipped(), scan(S.in_transit, 200), scan(S.delivered, 1500)]
    request = ReturnRequested(event_id="r1", order_id="ORD-1", occurred_at=at(5000), return_id="R1",
                              skus=["SKU-1"], reason="too small", carrier="USPS", tracking_number="9400RET")
    state, effects = run([*delivered, request])
    assert state.status is OrderStatus.return_requested
    assert [(link.tracking_number, link.package_id) for link in effects if isinstance(link, TrackingLink)][-1] == (
        "9400RET", "R1")  # the return label's scans will reach this order
    state, effects_transit = run([scan(S.in_transit, 5100, package="R1", tracking="9400RET"),
                                  scan(S.in_transit, 5200, package="R1", tracking="9400RET"),
                                  scan(S.delivered, 6000, package="R1", tracking="9400RET")], state)
    assert state.status is OrderStatus.returned
    received = ReturnReceived(event_id="rr", order_id="ORD-1", occurred_at=at(6100), return_id="R1")
    refund = RefundIssued(event_id="rf", order_id="ORD-1", occurred_at=at(6200), return_id="R1",
                          amount="19.99", currency="USD")
    state, effects_end = run([received, refund], state)
    assert state.status is OrderStatus.refunded
    assert [c.type.value for c in commands([*effects, *effects_transit, *effects_end])
            if c.type.value.startswith(("return", "refund"))] == [
        "return_started", "return_in_transit", "return_received", "refund_issued"]
    (refund_command,) = commands(effects_end, "refund_issued")
    assert (refund_command.refund_amount, refund_command.refund_currency) == ("19.99", "USD")


def test_feedback_request_a_configured_time_after_the_order_was_delivered():
    state, _ = run([placed(), shipped(), scan(S.in_transit, 200), scan(S.delivered, 1500)])
    assert state.next_deadline == at(1500 + 72 * HOUR)
    state, early = run([tick(1500 + 71 * HOUR)], state)
    state, due = run([tick(1500 + 72 * HOUR)], state)
    assert commands(early) == []
    assert [c.type.value for c in commands(due)] == ["feedback_request"]
    state, again = run([tick(1500 + 100 * HOUR)], state)
    # Nothing more to tell: the only deadline left is the state's removal (models.retention).
    from models.retention import expires_at
    from models.thresholds import Thresholds
    assert commands(again) == [] and state.next_deadline == expires_at(state, Thresholds())


def test_no_feedback_request_while_a_package_is_still_on_its_way():
    events = [placed(skus=("A", "B")), shipped(package="P1", tracking="T1", skus=("A",)),
              shipped(package="P2", tracking="T2", skus=("B",)), scan(S.delivered, 1500, package="P1", tracking="T1")]
    state, effects = run([*events, tick(1500 + 100 * HOUR)])
    assert "feedback_request" not in [c.type.value for c in commands(effects)]
    # Once the second package is delivered, the request comes a set time later, once.
    state, effects = run([scan(S.delivered, 2000, package="P2", tracking="T2"), tick(2000 + 72 * HOUR),
                          tick(2000 + 80 * HOUR)], state)
    assert [c.type.value for c in commands(effects)].count("feedback_request") == 1


def test_delivered_says_where_it_was_left():
    _, effects = run([placed(), shipped(), scan(S.delivered, 1500, raw_message="Left at front door",
                                                 location="Austin, TX")])
    (delivered,) = commands(effects, "delivered")
    assert delivered.location == "Left at front door, Austin, TX"


def test_order_lookup_view_has_promise_estimate_and_sources():
    state, _ = run([placed(), shipped(), scan(S.in_transit, 200, estimated_delivery=date(2026, 11, 3))])
    view = order_view(state)
    (package,) = view["packages"]
    assert view["promised_delivery_date"] == date(2026, 11, 4)
    assert (package["estimated_delivery"], package["estimate_source"]) == (date(2026, 11, 3), "carrier")
    assert package["carrier_original_estimate"] == date(2026, 11, 3)


def test_every_update_type_has_a_rule_that_emits_it():
    from models.effects import NotificationType
    journey_types = set()
    for events in (
        [placed(), tick(13 * HOUR), shipped(), scan(S.in_transit, 14 * HOUR, estimated_delivery=date(2026, 11, 5)),
         scan(S.out_for_delivery, 40 * HOUR), scan(S.attempt_failed, 41 * HOUR),
         scan(S.available_for_pickup, 50 * HOUR), scan(S.exception, 51 * HOUR, raw_code="failure/damaged"),
         scan(S.delivered, 52 * HOUR), tick(52 * HOUR + 72 * HOUR),
         ReturnRequested(event_id="r", order_id="ORD-1", occurred_at=at(200 * HOUR), return_id="R",
                         carrier="usps", tracking_number="RET1"),
         scan(S.in_transit, 201 * HOUR, package="R", tracking="RET1"),
         ReturnReceived(event_id="rr", order_id="ORD-1", occurred_at=at(202 * HOUR), return_id="R"),
         RefundIssued(event_id="rf", order_id="ORD-1", occurred_at=at(203 * HOUR), return_id="R")],
        [placed("ORD-2"), shipped("ORD-2", tracking="T2"), scan(S.in_transit, 200, order_id="ORD-2", tracking="T2",
                                                              estimated_delivery=date(2026, 11, 2))],
    ):
        _state, effects = run(events)
        journey_types |= {c.type for c in commands(effects)}
    assert journey_types == set(NotificationType)


