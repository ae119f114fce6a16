from __future__ import annotations

from datetime import timedelta

from models.effects import TrackingLink
from models.events import PackageStatus
from models.routing import (
    TrackingEntry,
    UnmatchedCheck,
    expire_held,
    link_tracking,
    route_scan,
    split_by_tracking_number,
    update_entry,
)
from tests.conftest import at, scan

S = PackageStatus


def unmatched(status, minutes, tracking="1Z999"):
    return scan(status, minutes, order_id="", package="", tracking=tracking)


LINK = TrackingLink(carrier="ups", tracking_number="1Z999", order_id="ORD-1", package_id="P1", announced_at=at(0))


def test_a_scan_before_its_shipment_is_held_then_released_in_event_time_order():
    entry = TrackingEntry()
    entry, out = route_scan(entry, unmatched(S.in_transit, 200))
    entry, out2 = route_scan(entry, unmatched(S.info_received, 70))
    assert out == out2 == [] and len(entry.held) == 2
    entry, released = link_tracking(entry, LINK)
    assert [(s.status, s.order_id, s.package_id) for s in released] == [
        (S.info_received, "ORD-1", "P1"), (S.in_transit, "ORD-1", "P1")]
    assert entry.held == []


def test_a_held_scan_resent_is_held_once():
    entry = TrackingEntry()
    for _ in range(3):
        entry, _ = route_scan(entry, unmatched(S.in_transit, 200))
    assert len(entry.held) == 1


def test_a_scan_after_its_shipment_goes_straight_to_its_order():
    entry, _ = link_tracking(TrackingEntry(), LINK)
    entry, out = route_scan(entry, unmatched(S.delivered, 900))
    assert [(s.order_id, s.package_id) for s in out] == [("ORD-1", "P1")]


def test_the_same_number_from_another_carrier_is_not_matched():
    entry, _ = link_tracking(TrackingEntry(), LINK)
    other = unmatched(S.in_transit, 200).model_copy(update={"carrier": "fedex"})
    entry, out = route_scan(entry, other)
    assert out == [] and len(entry.held) == 1


def test_only_a_held_scan_or_a_link_changes_what_the_router_must_store():
    entry, released, changed = update_entry(TrackingEntry(), unmatched(S.in_transit, 200))
    assert (released, changed) == ([], True)
    entry, released, changed = update_entry(entry, LINK)
    assert changed and [s.order_id for s in released] == ["ORD-1"]
    entry, matched, changed = update_entry(entry, unmatched(S.delivered, 900))
    assert [s.package_id for s in matched] == ["P1"] and not changed


def test_scans_of_other_tracking_numbers_are_sent_to_their_own_key():
    scans = [unmatched(S.in_transit, 1, tracking="A"), unmatched(S.delivered, 2, tracking="B"),
             unmatched(S.delivered, 3, tracking="A")]
    own, foreign = split_by_tracking_number("A", scans)
    assert [s.tracking_number for s in own] == ["A", "A"]
    assert {k: len(v) for k, v in foreign.items()} == {"B": 1}


def test_scans_no_order_claims_leave_the_held_list_with_a_row_and_one_alert_per_feed():
    from datetime import timedelta

    from models.effects import Alert, HistoryRecord
    from models.routing import UnmatchedCheck, expire_held, unmatched_due, unmatched_effects

    bound = timedelta(hours=48)
    entry = TrackingEntry()
    for minutes in (100, 200):  # ingested one minute after they happened
        entry, _ = route_scan(entry, unmatched(S.in_transit, minutes))
    assert unmatched_due(entry, bound) == at(101) + bound
    entry, early = expire_held(entry, UnmatchedCheck(at(101) + bound - timedelta(seconds=1), bound))
    assert early == [] and len(entry.held) == 2
    check = UnmatchedCheck(at(150) + bound, bound)
    entry, gone = expire_held(entry, check)
    assert [s.occurred_at for s in gone] == [at(100)] and len(entry.held) == 1
    effects = unmatched_effects(gone, check)
    rows = [e for e in effects if isinstance(e, HistoryRecord) and e.record_type == "event"]
    assert [r.detail.split(":")[0] for r in rows] == ["unmatched"]
    (alert,) = [e for e in effects if isinstance(e, Alert)]
    assert (alert.alert_kind.value, alert.carrier) == ("unmatched_scans", "ups")


def test_the_routers_memory_of_forwarded_scans_is_bounded_and_forgets_the_oldest_first():
    from streams.router import RecentScans

    recent = RecentScans(limit=10)
    recent.add([(f"scan-{n}", "ORD-1") for n in range(8)])
    assert ("scan-0", "ORD-1") in recent and ("scan-0", "ORD-2") not in recent  # the same scan for another order
    recent.add([(f"scan-{n}", "ORD-1") for n in range(8, 12)])
    assert len(recent.seen) <= 10
    assert ("scan-11", "ORD-1") in recent and ("scan-0", "ORD-1") not in recent


def test_routing_never_changes_the_entry_it_was_given():
    # The router keeps decoded entries between batches: a batch retried after a failed send
    # starts again from them, so a half-routed batch must leave them as they were.
    held = TrackingEntry()
    held, _ = route_scan(held, unmatched(S.in_transit, 200))
    before = held.model_copy(deep=True)
    route_scan(held, unmatched(S.out_for_delivery, 300))
    linked, _ = link_tracking(held, LINK)
    expire_held(held, UnmatchedCheck(at(10_000), timedelta(hours=1)))
    assert held == before
    linked_before = linked.model_copy(deep=True)
    link_tracking(linked, LINK.model_copy(update={"removed": True}))
    assert linked == linked_before and linked.links


def test_a_scan_already_sent_to_its_order_is_left_out_before_it_costs_a_copy():
    entry, _ = link_tracking(TrackingEntry(), LINK)
    repeat = unmatched(S.in_transit, 200)
    entry, out, changed = update_entry(entry, repeat, sent=lambda scan_id, order_id: (scan_id, order_id) == (
        repeat.event_id, "ORD-1"))
    assert (out, changed) == ([], False)
    _, out, _ = update_entry(entry, unmatched(S.delivered, 900), sent=lambda *_: False)
    assert [s.order_id for s in out] == ["ORD-1"]


def test_a_scan_already_sent_goes_again_when_it_carries_a_new_carrier_estimate():
    from datetime import date

    from models.events import sent_key

    entry, _ = link_tracking(TrackingEntry(), LINK)
    first = unmatched(S.in_transit, 200).model_copy(update={"estimated_delivery": date(2026, 11, 4)})
    already = {(sent_key(first), "ORD-1")}
    _, out, _ = update_entry(entry, first, sent=lambda key, order_id: (key, order_id) in already)
    assert out == []
    revised = first.model_copy(update={"estimated_delivery": date(2026, 11, 3)})
    _, out, _ = update_entry(entry, revised, sent=lambda key, order_id: (key, order_id) in already)
    assert [(s.order_id, s.estimated_delivery) for s in out] == [("ORD-1", date(2026, 11, 3))]


def test_a_carrier_going_back_to_an_earlier_date_on_a_known_scan_is_forwarded_again():
    from datetime import date

    from models.events import sent_key
    from streams.router import ForwardedScans

    forwarded = ForwardedScans(limit=10)
    first = unmatched(S.in_transit, 200).model_copy(update={"estimated_delivery": date(2026, 11, 4)})
    revised = first.model_copy(update={"estimated_delivery": date(2026, 11, 5)})
    forwarded.add([(sent_key(first), "ORD-1")])
    assert forwarded.sent(sent_key(first), "ORD-1") and not forwarded.sent(sent_key(revised), "ORD-1")
    forwarded.add([(sent_key(revised), "ORD-1")])
    assert not forwarded.sent(sent_key(first), "ORD-1"), "the first date again is news once the second was sent"
    assert forwarded.sent(sent_key(revised), "ORD-1") and not forwarded.sent(sent_key(revised), "ORD-2")
