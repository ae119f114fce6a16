"""What a customer hears, and what support sees, as events arrive in every order."""

from __future__ import annotations

from models.codec import copy_state
from models.effects import HistoryRecord, NotificationCommand, NotificationType, TrackingLink
from models.events import OrderCancelled, PackageStatus
from models.order import OrderStatus, apply, apply_batch
from tests.conftest import at, placed, scan, shipped

S = PackageStatus


def run(events):
    state, effects = None, []
    for event in events:
        state, produced = apply(state, event)
        effects.extend(produced)
    return state, effects


def commands(effects) -> list[tuple[str, str]]:
    return [(e.type.value, e.package_id) for e in effects if isinstance(e, NotificationCommand)]


HAPPY_PATH = [placed(), shipped(), scan(S.info_received, 70), scan(S.in_transit, 200),
              scan(S.out_for_delivery, 2000), scan(S.delivered, 2300, location="Front door")]


def test_a_customer_hears_each_milestone_once_in_order():
    state, effects = run(HAPPY_PATH)
    assert commands(effects) == [("order_confirmed", ""), ("estimate_set", ""), ("shipped", "P1"),
                                 ("out_for_delivery", "P1"), ("delivered", "P1")]
    assert state.status is OrderStatus.delivered
    assert state.packages["P1"].status is S.delivered


def test_shipped_command_tells_carrier_tracking_number_and_link():
    _, effects = run([placed(), shipped(tracking="1Z12345E0205271688")])
    command = next(e for e in effects if isinstance(e, NotificationCommand) and e.type is NotificationType.shipped)
    assert (command.carrier, command.tracking_number) == ("ups", "1Z12345E0205271688")
    assert command.tracking_url == "https://www.ups.com/track?tracknum=1Z12345E0205271688"
    assert command.customer_id == "CUST-9"


def test_delivered_command_says_where_the_package_was_left():
    _, effects = run(HAPPY_PATH)
    delivered = [e for e in effects if isinstance(e, NotificationCommand) and e.type is NotificationType.delivered]
    assert delivered[0].location == "Front door"


def test_duplicates_change_nothing_and_notify_nobody_twice():
    state_once, effects_once = run(HAPPY_PATH)
    state_twice, effects_twice = run([e for e in HAPPY_PATH for _ in (0, 1)])
    assert commands(effects_twice) == commands(effects_once)
    assert state_twice.packages == state_once.packages
    assert len([e for e in effects_twice if isinstance(e, HistoryRecord)]) == len(
        [e for e in effects_once if isinstance(e, HistoryRecord)])


def test_late_out_for_delivery_after_delivered_emits_nothing():
    events = [placed(), shipped(), scan(S.in_transit, 200), scan(S.delivered, 2300),
              scan(S.out_for_delivery, 2000)]
    state, effects = run(events)
    assert ("out_for_delivery", "P1") not in commands(effects)
    assert state.packages["P1"].status is S.delivered


def test_event_time_not_arrival_decides_current_status():
    # The in-transit scan arrives after the out-for-delivery one but happened before it.
    state, _ = run([placed(), shipped(), scan(S.out_for_delivery, 2000), scan(S.in_transit, 200)])
    package = state.packages["P1"]
    assert package.status is S.out_for_delivery
    assert [e.status for e in package.timeline] == [S.in_transit, S.out_for_delivery]


def test_command_ids_name_the_milestone_not_the_event_that_caused_it():
    """A receiver drops repeats by command id: the same milestone must keep its id whichever
    event (a resent webhook with another id, a different source) reports it, and different
    milestones, packages or orders must never share one."""
    from models.effects import stable_id

    _, first = run(HAPPY_PATH)
    renamed = [e.model_copy(update={"event_id": e.event_id + "-resent"}) for e in HAPPY_PATH]
    _, again = run(renamed)
    ids = [e.command_id for e in first if isinstance(e, NotificationCommand)]
    assert ids == [e.command_id for e in again if isinstance(e, NotificationCommand)]
    # Worked out from the milestone alone: (order, package, update type).
    assert ids == [stable_id("ORD-1", "", "order_confirmed"), stable_id("ORD-1", "", "estimate_set"),
                   stable_id("ORD-1", "P1", "shipped"), stable_id("ORD-1", "P1", "out_for_delivery"),
                   stable_id("ORD-1", "P1", "delivered")]
    _, other_order = run([e.model_copy(update={"order_id": "ORD-2"}) for e in HAPPY_PATH])
    assert not set(ids) & {e.command_id for e in other_order if isinstance(e, NotificationCommand)}


def test_split_shipment_is_partially_shipped_then_partially_delivered():
    two_items = placed(skus=("SKU-1", "SKU-2"))
    state, _ = run([two_items, shipped(package="P1", tracking="T1", skus=("SKU-1",))])
    assert state.status is OrderStatus.partially_shipped
    state, _ = run([two_items, shipped(package="P1", tracking="T1", skus=("SKU-1",)),
                    shipped(package="P2", tracking="T2", skus=("SKU-2",))])
    assert state.status is OrderStatus.shipped
    state, effects = run([two_items, shipped(package="P1", tracking="T1", skus=("SKU-1",)),
                          shipped(package="P2", tracking="T2", skus=("SKU-2",)),
                          scan(S.delivered, 900, package="P1", tracking="T1")])
    assert state.status is OrderStatus.partially_delivered
    assert ("delivered", "P1") in commands(effects) and ("delivered", "P2") not in commands(effects)


def test_an_order_is_not_delivered_while_an_item_has_not_shipped():
    from tests.conftest import tick

    # Package 1 arrives before the warehouse ships package 2: the order is only partly there,
    # and nobody is asked for feedback on an order still missing an item, however long it waits.
    two_items = placed(skus=("SKU-1", "SKU-2"))
    first = [two_items, shipped(package="P1", tracking="T1", skus=("SKU-1",)),
             scan(S.delivered, 900, package="P1", tracking="T1")]
    state, effects = run([*first, tick(900 + 30 * 24 * 60)])
    assert state.status is OrderStatus.partially_delivered
    assert ("feedback_request", "") not in commands(effects)
    late = shipped(package="P2", tracking="T2", skus=("SKU-2",))
    state, effects = run([*first, late, scan(S.delivered, 3000, package="P2", tracking="T2"),
                          tick(3000 + 30 * 24 * 60)])
    assert state.status is OrderStatus.delivered
    assert commands(effects).count(("feedback_request", "")) == 1


def test_shipment_announces_its_tracking_number_to_the_scan_router():
    _, effects = run([placed(), shipped(tracking="1Z999")])
    links = [e for e in effects if isinstance(e, TrackingLink)]
    assert [(link.carrier, link.tracking_number, link.order_id, link.package_id) for link in links] == [
        ("ups", "1Z999", "ORD-1", "P1")]


def test_cancelled_before_confirmation_is_never_confirmed():
    cancel = OrderCancelled(event_id="c1", order_id="ORD-1", occurred_at=at(1), reason="customer")
    state, effects = run([cancel, placed()])
    assert state.status is OrderStatus.cancelled
    assert commands(effects) == []


def test_history_records_every_event_and_each_status_change():
    _, effects = run(HAPPY_PATH)
    records = [e for e in effects if isinstance(e, HistoryRecord)]
    assert sum(r.record_type == "event" for r in records) == len(HAPPY_PATH)
    package_transitions = [(r.previous_status, r.status) for r in records
                           if r.record_type == "transition" and r.package_id]
    assert package_transitions == [("info_received", "in_transit"), ("in_transit", "out_for_delivery"),
                                   ("out_for_delivery", "delivered")]
    assert len({r.record_id for r in records}) == len(records)


def test_batch_apply_matches_one_by_one():
    events = [*HAPPY_PATH, placed("ORD-2"), shipped("ORD-2", tracking="T9"), HAPPY_PATH[3]]
    changed, batch_effects, _, _ = apply_batch({}, events)
    states: dict = {}
    single_effects = []
    for event in events:
        states[event.order_id], produced = apply(states.get(event.order_id), event)
        single_effects.extend(produced)
    assert batch_effects == single_effects
    assert changed == states


def test_apply_never_changes_the_state_it_was_given():
    state, _ = run(HAPPY_PATH[:3])
    before = copy_state(state)
    for event in HAPPY_PATH[3:] + [shipped(package="P2", tracking="T2")]:
        apply(state, event)
    assert state == before


def test_commands_carry_when_trackline_saw_the_event_that_caused_them():
    seen_at = at(3)
    _, effects = run([placed().model_copy(update={"ingested_at": seen_at})])
    confirmed, estimate = [e for e in effects if isinstance(e, NotificationCommand)]
    assert confirmed.caused_by_ingested_at == seen_at and confirmed.occurred_at == at(0)
    assert estimate.type is NotificationType.estimate_set
    assert estimate.estimated_delivery == placed().promised_delivery_date


def test_a_resent_scan_is_a_duplicate_however_long_the_journey():
    from models.events import PackageStatus
    from models.order import SEEN_EVENTS_KEPT
    from tests.conftest import placed, run, scan, shipped

    journey = [scan(PackageStatus.in_transit, 100 + minutes) for minutes in range(SEEN_EVENTS_KEPT + 50)]
    state, _ = run([placed(), shipped(), *journey])
    timeline = list(state.packages["P1"].timeline)
    for resent in (journey[0], journey[SEEN_EVENTS_KEPT // 2], journey[-1]):  # beyond the id window, and within
        state, effects = run([resent], state)
        assert effects == [] and state.packages["P1"].timeline == timeline


def test_a_redelivered_tick_is_a_duplicate_and_a_later_tick_is_not():
    from datetime import timedelta

    from models.events import ClockTick
    from streams.clock import ticks_for
    from tests.conftest import T0, placed, run

    state, _ = run([placed()])
    due = int(state.next_deadline.timestamp())
    first = ticks_for([(0, "ORD-1", due)], T0 + timedelta(hours=13))
    again = ticks_for([(0, "ORD-1", due)], T0 + timedelta(hours=13))
    later = ticks_for([(0, "ORD-1", due)], T0 + timedelta(hours=14))
    assert first == again and first != later
    tick = ClockTick.model_validate_json(first[0][1])
    state, opened = run([tick], state)
    assert opened  # the warehouse delay
    state, replayed = run([ClockTick.model_validate_json(again[0][1])], state)
    assert replayed == []
