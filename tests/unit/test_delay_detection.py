"""Time-driven detection: each delay rule fires once its deadline passes, and only then.

The order in tests.conftest is two-day service (pickup 24 h / 48 h, stale 36 h, lost 168 h),
placed at T0 = 2026-11-02 08:00 UTC, ship by 20:00, promised for 2026-11-04.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from models.effects import Alert, AlertKind, HistoryRecord, NotificationCommand
from models.events import PackageStatus
from tests.conftest import at, placed, run, scan, shipped, tick

S = PackageStatus
K = AlertKind
HOUR = 60
# No feed measured yet: a customer hears of a missed deadline 30 minutes (the configured
# starting allowance) after ops do, in case a late record shows it was met.
ALLOWANCE = 30


def alerts(effects, change="open"):
    return [(a.alert_kind, a.package_id) for a in effects if isinstance(a, Alert) and a.state == change]


def told(effects):
    return [(c.type.value, c.package_id, c.reason) for c in effects if isinstance(c, NotificationCommand)]


def delays(effects):
    return [(c.package_id, c.estimated_delivery) for c in effects
            if isinstance(c, NotificationCommand) and c.type.value == "delayed"]


def test_warehouse_delay_fires_when_ship_by_passes_not_before():
    state, _ = run([placed()])
    assert state.next_deadline == at(12 * HOUR)  # the ship-by time: the worker indexes it
    _, early = run([tick(12 * HOUR - 1)], state)
    assert alerts(early) == []
    state, late = run([tick(12 * HOUR)], state)
    assert alerts(late) == [(K.warehouse_delay, "")]
    assert delays(late) == []  # ops now, the customer after the allowance
    assert state.next_deadline == at(12 * HOUR + ALLOWANCE)
    state, told_ = run([tick(12 * HOUR + ALLOWANCE)], state)
    assert delays(told_) == [("", None)]
    assert state.open_alerts()[0].alert_kind is K.warehouse_delay


def test_a_shipment_read_inside_the_allowance_closes_the_alert_and_nobody_is_told():
    state, _ = run([placed(), tick(12 * HOUR)])
    assert state.open_alerts()[0].alert_kind is K.warehouse_delay
    on_time = shipped().model_copy(update={"occurred_at": at(11 * HOUR), "ingested_at": at(12 * HOUR + 10)})
    state, effects = run([on_time, tick(12 * HOUR + ALLOWANCE)], state)
    assert alerts(effects, "closed") == [(K.warehouse_delay, "")]
    assert [t for t in told(effects) if t[0] == "delayed"] == []


def test_order_placed_and_shipped_read_together_after_ship_by_open_no_alert():
    # A backlog: the fulfillment center's events reach trackline hours after they happened.
    late = {"ingested_at": at(20 * HOUR)}
    state, effects = run([placed().model_copy(update=late),
                          shipped().model_copy(update={**late, "occurred_at": at(8 * HOUR)})])
    assert alerts(effects) == [] and [t for t in told(effects) if t[0] == "delayed"] == []


def test_shipping_closes_the_warehouse_delay():
    state, _ = run([placed(), tick(13 * HOUR)])
    late_shipment = shipped().model_copy(update={"occurred_at": at(14 * HOUR)})
    state, effects = run([late_shipment], state)
    assert alerts(effects, "closed") == [(K.warehouse_delay, "")]
    assert state.open_alerts() == []


def test_carrier_pickup_delay_has_two_levels_and_only_the_second_tells_the_customer():
    state, _ = run([placed(), shipped()])  # label created at +60 min, no carrier scan
    assert state.next_deadline == at(60 + 24 * HOUR)
    state, first = run([tick(60 + 24 * HOUR)], state)
    assert alerts(first) == [(K.pickup_delay_1, "P1")] and delays(first) == []
    state, second = run([tick(60 + 48 * HOUR)], state)
    assert (K.pickup_delay_2, "P1") in alerts(second) and delays(second) == []
    state, second = run([tick(60 + 48 * HOUR + ALLOWANCE)], state)
    assert ("P1", date(2026, 11, 4)) in delays(second)
    state, accepted = run([scan(S.picked_up, 60 + 49 * HOUR)], state)
    assert sorted(alerts(accepted, "closed")) == [(K.pickup_delay_1, "P1"), (K.pickup_delay_2, "P1")]


def test_stale_tracking_is_for_ops_and_a_new_scan_clears_it():
    state, _ = run([placed(), shipped(), scan(S.in_transit, 200)])
    stale_at = 200 + 36 * HOUR
    state, effects = run([tick(stale_at)], state)
    assert (K.in_transit_stale, "P1") in alerts(effects)
    state, later = run([tick(stale_at + ALLOWANCE), tick(stale_at + 10 * HOUR)], state)
    assert told(effects) == [] and told(later) == []  # however long it stays open
    state, effects = run([scan(S.in_transit, stale_at + 30)], state)
    assert alerts(effects, "closed") == [(K.in_transit_stale, "P1")]
    assert state.next_deadline is not None and state.next_deadline > at(stale_at + 30)


def test_a_late_old_scan_does_not_postpone_the_stale_deadline():
    state, _ = run([placed(), shipped(), scan(S.in_transit, 600)])
    deadline = state.next_deadline
    state, _ = run([scan(S.picked_up, 100)], state)  # happened earlier, arrived later
    assert state.next_deadline == deadline


def test_presumed_lost_after_a_long_silence_tells_the_customer_what_to_do():
    state, _ = run([placed(), shipped(), scan(S.in_transit, 200)])
    state, effects = run([tick(200 + 168 * HOUR)], state)
    assert (K.presumed_lost, "P1") in alerts(effects)
    # Ops hear at 168 h; the customer of two-day service only after eight days of silence,
    # which carriers come back from whatever the service level.
    state, effects = run([tick(200 + 168 * HOUR + ALLOWANCE)], state)
    assert [c.reason for c in effects if isinstance(c, NotificationCommand) and c.type.value == "exception"] == []
    state, effects = run([tick(200 + 192 * HOUR + ALLOWANCE)], state)
    (exception,) = [c for c in effects if isinstance(c, NotificationCommand) and c.type.value == "exception"]
    assert exception.reason == "lost" and "replacement" in exception.next_step and "refund" in exception.next_step


def test_carrier_estimate_after_the_promise_is_a_delay_found_at_that_scan():
    state, _ = run([placed(), shipped(), scan(S.in_transit, 200)])
    state, effects = run([scan(S.in_transit, 300, estimated_delivery=date(2026, 11, 6))], state)
    assert alerts(effects) == [(K.estimate_after_promise, "P1")]
    assert delays(effects) == [("P1", date(2026, 11, 6))]
    assert [t for t in told(effects) if t[0] == "estimate_revised"] == []  # one message, not two
    package = state.packages["P1"]
    assert (package.carrier_original_estimate, package.carrier_current_estimate) == (date(2026, 11, 6),) * 2
    assert (package.estimated_delivery, package.estimate_source) == (date(2026, 11, 6), "carrier")


def test_estimate_revised_only_when_the_date_changes():
    state, _ = run([placed(), shipped()])  # promised 2026-11-04
    state, first = run([scan(S.in_transit, 200, estimated_delivery=date(2026, 11, 2))], state)
    state, same = run([scan(S.in_transit, 300, estimated_delivery=date(2026, 11, 2))], state)
    state, back = run([scan(S.in_transit, 400, estimated_delivery=date(2026, 11, 4))], state)
    revisions = [(c.previous_estimate, c.estimated_delivery, c.estimate_source) for c in [*first, *same, *back]
                 if isinstance(c, NotificationCommand) and c.type.value == "estimate_revised"]
    assert revisions == [(date(2026, 11, 4), date(2026, 11, 2), "carrier"),
                         (date(2026, 11, 2), date(2026, 11, 4), "carrier")]
    package = state.packages["P1"]
    assert package.carrier_original_estimate == date(2026, 11, 2)
    assert package.carrier_current_estimate == date(2026, 11, 4)


def test_a_date_flipping_between_two_days_is_told_once():
    """Hysteresis: a later date is told at once; a date one day earlier than the one told is
    not (the parcel arriving a day early disappoints nobody), so a carrier flipping between
    two days sends one notice, not one per flip. A clearly earlier date is told again; a date
    already over (a carrier's stale date, read on Monday the 2nd) is no estimate and is not told."""
    order = placed().model_copy(update={"promised_delivery_date": date(2026, 11, 10)})
    state, _ = run([order, shipped()])
    flips = [date(2026, 11, 6), date(2026, 11, 7), date(2026, 11, 6), date(2026, 11, 7), date(2026, 11, 6),
             date(2026, 11, 7)]
    effects: list = []
    for minute, day in enumerate(flips):
        state, found = run([scan(S.in_transit, 200 + 10 * minute, estimated_delivery=day)], state)
        effects.extend(found)
    state, clearly_earlier = run([scan(S.in_transit, 300, estimated_delivery=date(2026, 11, 5))], state)
    state, already_over = run([scan(S.in_transit, 310, estimated_delivery=date(2026, 11, 1))], state)
    revisions = [(c.previous_estimate, c.estimated_delivery) for c in [*effects, *clearly_earlier, *already_over]
                 if isinstance(c, NotificationCommand) and c.type.value == "estimate_revised"]
    assert revisions == [(date(2026, 11, 10), date(2026, 11, 6)), (date(2026, 11, 6), date(2026, 11, 7)),
                         (date(2026, 11, 7), date(2026, 11, 5))]
    assert state.packages["P1"].notified_estimate == date(2026, 11, 5)


def test_an_older_scan_does_not_overwrite_the_carriers_current_estimate():
    state, _ = run([placed(), shipped(), scan(S.in_transit, 400, estimated_delivery=date(2026, 11, 3)),
                    scan(S.picked_up, 100, estimated_delivery=date(2026, 11, 5))])
    package = state.packages["P1"]
    assert package.carrier_current_estimate == date(2026, 11, 3)
    assert package.carrier_original_estimate == date(2026, 11, 3)  # first one we received


def test_promise_missed_at_midnight_where_the_customer_lives():
    order = placed().model_copy(update={"delivery_time_zone": "America/New_York"})
    state, _ = run([order, shipped(), scan(S.in_transit, 40 * HOUR)])
    end_of_promised_day = datetime(2026, 11, 5, 5, 0, tzinfo=UTC)  # midnight in New York (EST)
    assert state.next_deadline == end_of_promised_day
    minutes = (end_of_promised_day - at(0)).total_seconds() / 60
    _, before = run([tick(minutes - 1)], state)
    assert (K.promise_missed, "P1") not in alerts(before)
    state, after = run([tick(minutes)], state)
    assert (K.promise_missed, "P1") in alerts(after)
    state, after = run([tick(minutes + ALLOWANCE)], state)
    assert ("P1", None) in delays(after)  # no new date to give yet


def test_out_for_delivery_not_delivered_by_end_of_the_local_day():
    state, _ = run([placed(), shipped(), scan(S.in_transit, 200), scan(S.out_for_delivery, 24 * HOUR)])
    # Out for delivery on 2026-11-03 (UTC): overdue from midnight.
    midnight = (datetime(2026, 11, 4, tzinfo=UTC) - at(0)).total_seconds() / 60
    state, effects = run([tick(midnight)], state)
    assert (K.out_for_delivery_overdue, "P1") in alerts(effects)
    state, effects = run([tick(midnight + ALLOWANCE)], state)
    assert [t for t in told(effects) if t[0] == "delayed"][0][2].startswith("The carrier could not deliver")
    state, effects = run([scan(S.delivered, midnight + 600)], state)
    assert (K.out_for_delivery_overdue, "P1") in alerts(effects, "closed")
    assert state.open_alerts() == []
    assert state.next_deadline is not None  # only the feedback request is left


def test_each_detection_fires_once_even_when_ticks_repeat():
    state, _ = run([placed()])
    state, first = run([tick(13 * HOUR)], state)
    state, again = run([tick(14 * HOUR), tick(14 * HOUR)], state)  # past the allowance: told, once
    state, later = run([tick(15 * HOUR)], state)
    assert alerts(first) == [(K.warehouse_delay, "")] and delays(first) == []
    assert alerts(again) == [] and delays(again) == [("", None)]
    assert alerts(later) == [] and told(later) == []


def test_a_deadline_learned_late_waits_one_allowance_from_then():
    # The worker was down: the first tick after ship-by comes a day later. Ops see it at once;
    # the customer only once a late record could no longer show the order shipped.
    state, _ = run([placed()])
    state, first = run([tick(36 * HOUR)], state)
    assert alerts(first) == [(K.warehouse_delay, "")] and delays(first) == []
    assert state.next_deadline == at(36 * HOUR + ALLOWANCE)
    state, then = run([tick(36 * HOUR + ALLOWANCE)], state)
    assert delays(then) == [("", None)]


def test_cancelled_orders_raise_no_alerts():
    from models.events import OrderCancelled
    from models.retention import expires_at
    from models.thresholds import Thresholds
    cancel = OrderCancelled(event_id="c", order_id="ORD-1", occurred_at=at(30))
    state, effects = run([placed(), cancel])
    # The only deadline a cancelled order keeps is its removal (models.retention), no detection's.
    assert state.next_deadline == expires_at(state, Thresholds())
    state, effects = run([placed(), cancel, tick(30 * 24 * HOUR)])
    assert alerts(effects) == [] and state.expired_at is not None


def test_alerts_are_history_rows_for_ops():
    _, effects = run([placed(), tick(13 * HOUR)])
    (row,) = [r for r in effects if isinstance(r, HistoryRecord) and r.record_type == "alert"]
    assert (row.status, row.previous_status, row.occurred_at) == ("warehouse_delay", "open", at(12 * HOUR))


def test_a_route_that_runs_past_its_length_is_overdue_before_midnight():
    state, _ = run([placed(), shipped(), scan(S.in_transit, 200), scan(S.out_for_delivery, 25 * HOUR)])
    # Out for delivery at 09:00 UTC on 2026-11-03: 16 hours later is 01:00 the next day, midnight comes first.
    assert state.next_deadline == datetime(2026, 11, 4, tzinfo=UTC)
    early_state, _ = run([placed(), shipped(), scan(S.in_transit, 200), scan(S.out_for_delivery, 17 * HOUR)])
    # Out for delivery at 01:00 UTC: the 16-hour route ends at 17:00, before midnight.
    assert early_state.next_deadline == at(33 * HOUR)


def test_a_carrier_clock_running_ahead_does_not_hold_back_an_event_found_delay():
    state, _ = run([placed(), shipped(), scan(S.in_transit, 200)])
    ahead = scan(S.in_transit, 300, estimated_delivery=date(2026, 11, 6)).model_copy(update={"ingested_at": at(299)})
    _, effects = run([ahead], state)
    assert alerts(effects) == [(K.estimate_after_promise, "P1")]


def test_a_known_scan_resent_with_a_new_carrier_estimate_revises_the_estimate():
    """EasyPost resends the whole history when only ``est_delivery_date`` changed: the newest
    scan comes again with another date. That date is news; the same resend again is not, an
    older scan's date is not, and the carrier going back to its first date is news again."""
    latest = scan(S.in_transit, 300, estimated_delivery=date(2026, 11, 4))
    state, _ = run([placed(), shipped(), scan(S.picked_up, 200, estimated_delivery=date(2026, 11, 4)), latest])

    def revisions(effects):
        return [(c.previous_estimate, c.estimated_delivery) for c in effects
                if isinstance(c, NotificationCommand) and c.type.value == "estimate_revised"]

    earlier = latest.model_copy(update={"estimated_delivery": date(2026, 11, 2), "ingested_at": at(400)})
    state, effects = run([earlier], state)
    assert revisions(effects) == [(date(2026, 11, 4), date(2026, 11, 2))]
    assert state.packages["P1"].carrier_current_estimate == date(2026, 11, 2)
    assert [r.record_type for r in effects if isinstance(r, HistoryRecord)] == ["estimate"]  # no second scan row
    assert len(state.packages["P1"].timeline) == 2

    state, again = run([earlier.model_copy(update={"ingested_at": at(410)})], state)  # resent, same date
    older = scan(S.picked_up, 200, estimated_delivery=date(2026, 11, 9)).model_copy(update={"ingested_at": at(420)})
    state, stale = run([older], state)
    assert again == [] and stale == []
    assert state.packages["P1"].carrier_current_estimate == date(2026, 11, 2)

    back = latest.model_copy(update={"ingested_at": at(500)})  # the first date again
    state, effects = run([back], state)
    assert revisions(effects) == [(date(2026, 11, 2), date(2026, 11, 4))]
    state, replayed = run([back], state)  # the same record replayed
    assert replayed == []


def test_a_revised_carrier_estimate_after_the_promise_is_a_delay():
    latest = scan(S.in_transit, 300, estimated_delivery=date(2026, 11, 4))
    state, _ = run([placed(), shipped(), latest])
    later = latest.model_copy(update={"estimated_delivery": date(2026, 11, 6), "ingested_at": at(400)})
    state, effects = run([later], state)
    assert alerts(effects) == [(K.estimate_after_promise, "P1")]
    assert delays(effects) == [("P1", date(2026, 11, 6))]


def test_an_open_late_estimate_re_dated_by_each_scan_leaves_the_promise_as_the_next_deadline():
    """The carrier's date after the promise is a finding of the scan that brings it; each later
    scan re-dates it. That must not leave a time already past as the order's next deadline:
    the deadline index would tick it forever (or drop it) and the missed promise would wait
    for the next scan to be noticed."""
    late = date(2026, 11, 6)
    state, _ = run([placed(), shipped(), scan(S.in_transit, 200, estimated_delivery=late)])
    state, _ = run([scan(S.in_transit, 900, estimated_delivery=late)], state)
    assert state.next_deadline is not None and state.next_deadline > at(901)
    promise_end = datetime(2026, 11, 5, tzinfo=UTC)  # the end of the promised day (UTC customer)
    assert state.next_deadline <= promise_end
