from __future__ import annotations

from models.effects import TrackingLink
from models.events import PackageStatus
from models.routing import TrackingEntry, link_tracking, partition_for, route_scan
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


def test_partition_for_matches_kafkas_default_partitioner():
    # Faust's producer (aiokafka) places keyed records with this partitioner.
    from aiokafka.partitioner import DefaultPartitioner
    for key in ("ORD-0000001-ab12", "1Z999", "x"):
        assert partition_for(key, 6) == DefaultPartitioner()(key.encode(), list(range(6)), list(range(6)))
