"""The simulator's harder traffic (type-confused payloads, a carrier an hour late, carriers
under a second name, a burst of old journeys, labels never announced) and the ground truth
it keeps for the demo's checks."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from functools import cache
from pathlib import Path

import orjson
import pytest

from models import topics
from models.carrier_codes import carrier_code
from models.carriers import parse_carrier_payload
from models.errors import InvalidPayload
from models.fulfillment import parse_fulfillment_event
from tests.conftest import T0
from trackline.simulator import FEED_DELAY, LATE_TROUBLES, SECOND_NAMES, Outgoing, TrafficMix, TrafficSimulator


@cache
def simulated(seed: int = 11, seconds: float = 40, **mix: float) -> tuple[TrafficSimulator, list[Outgoing]]:
    simulator = TrafficSimulator(seed=seed, start=T0, mix=TrafficMix(**mix))
    return simulator, list(simulator.stream(orders_per_second=5, duration=seconds))


def source(item: Outgoing) -> str:
    return dict(item.headers)[topics.SOURCE_HEADER].decode()


def scans_of(items: list[Outgoing]):
    """(message, scan) for every scan the messages hold, read when each is due."""
    for item in items:
        if item.kind == "scan":
            for scan in parse_carrier_payload(source(item), item.value, T0 + timedelta(seconds=item.due)):
                yield item, scan


def announcements(items: list[Outgoing]) -> dict[str, dict]:
    """package_shipped bodies by tracking number."""
    return {body["tracking_number"]: body for body in (orjson.loads(i.value) for i in items if i.kind == "fc")
            if body["type"] == "package_shipped"}


def test_every_journey_has_its_ground_truth():
    simulator, items = simulated()
    placed = {orjson.loads(i.value)["order_id"] for i in items if i.kind == "fc" and b'"order_placed"' in i.value}
    assert placed == set(simulator.journeys)
    shipped = announcements(items)
    truth = {p.tracking_number: (j, p) for j in simulator.journeys.values() for p in j.packages}
    assert set(shipped) == set(truth)
    for number, (journey, package) in truth.items():
        assert shipped[number]["order_id"] == journey.order_id
        assert shipped[number]["package_id"] == package.package_id
        assert shipped[number]["carrier"] == package.announced_as
    kinds = Counter(j.traffic for j in simulator.journeys.values())
    assert kinds["live"] and kinds["late_feed"] and kinds["old_burst"] == TrafficMix().old_burst_journeys
    for journey in simulator.journeys.values():
        assert journey.late == (journey.trouble in LATE_TROUBLES)
        if journey.traffic != "live":
            assert not journey.trouble and not journey.late  # on time, whatever the feed does
        if not journey.late:
            assert not any(p.late for p in journey.packages)
            assert simulator.deserves_delay_notice(journey.order_id) is False
    late = [j for j in simulator.journeys.values() if j.late]
    assert late and all(simulator.deserves_delay_notice(j.order_id) for j in late)
    assert simulator.deserves_delay_notice("ORD-NOT-SIMULATED") is None


def test_every_package_counts_its_distinct_scans():
    simulator, items = simulated()
    distinct: dict[str, set[str]] = {}
    for _, scan in scans_of(items):
        distinct.setdefault(scan.tracking_number, set()).add(scan.event_id)
    for journey in simulator.journeys.values():
        for package in journey.packages:
            assert len(distinct[package.tracking_number]) == package.scans, (journey.trouble, package)


def test_the_late_carriers_scans_happened_an_hour_before_they_are_sent():
    simulator, items = simulated()
    late = {p.tracking_number for j in simulator.journeys.values() if j.traffic == "late_feed" for p in j.packages}
    assert late
    first_seen: dict[str, timedelta] = {}  # a webhook repeats the history: a scan's delay is at its first
    for _, scan in scans_of(items):
        if scan.tracking_number in late:
            first_seen.setdefault(scan.event_id, scan.ingested_at - scan.occurred_at)
    assert first_seen and all(abs(d - FEED_DELAY) < timedelta(seconds=1) for d in first_seen.values())
    assert {scan.carrier for _, scan in scans_of(items) if scan.tracking_number in late} == {"ontrac"}
    # Its journeys are on time in event time: scans follow the shipment by seconds, not hours.
    shipped = announcements(items)
    for _, scan in scans_of(items):
        if scan.tracking_number in late:
            gap = scan.occurred_at - parse_fulfillment_event(orjson.dumps(shipped[scan.tracking_number])).occurred_at
            assert timedelta(seconds=-1) < gap < timedelta(seconds=30)


def test_no_scan_is_dated_ahead_of_its_arrival():
    _, items = simulated()
    assert all(scan.occurred_at <= scan.ingested_at + timedelta(seconds=1) for _, scan in scans_of(items))


def test_second_name_carriers_spell_the_carrier_otherwise_than_the_announcement():
    simulator, items = simulated(second_name=0.3)
    shipped = announcements(items)
    renamed = {p.tracking_number: p for j in simulator.journeys.values() for p in j.packages if p.second_name}
    seen: dict[str, set[str]] = {}
    for item, scan in scans_of(items):
        if scan.tracking_number in renamed:
            assert item.traffic == "second_name"
            seen.setdefault(scan.tracking_number, set()).add(source(item))
            announced = shipped[scan.tracking_number]["carrier"]
            # The spelling differs, the code is one: models/carrier_codes.py folds them.
            assert carrier_code(announced) == scan.carrier
    assert set(seen) == set(renamed)
    formats = {p.source for p in renamed.values()}
    assert formats == {source for _, _, source, _ in SECOND_NAMES}
    for package in renamed.values():
        assert package.announced_as != package.scanned_as
        assert carrier_code(package.announced_as) == carrier_code(package.scanned_as)
    x12 = next(i for i in items if i.traffic == "second_name" and source(i) == "x12-214")
    assert b"*UPSN~" in x12.value and shipped[x12.key.decode()]["carrier"] == "UPS"
    shippo = next(i for i in items if i.traffic == "second_name" and source(i) == "shippo")
    assert orjson.loads(shippo.value)["data"]["carrier"] == "dhl_express"
    assert shipped[shippo.key.decode()]["carrier"] == "DHL Express"


def test_the_burst_sends_whole_journeys_of_one_to_two_days_ago_at_once():
    simulator, items = simulated()
    burst = {j.order_id: j for j in simulator.journeys.values() if j.traffic == "old_burst"}
    assert len(burst) == TrafficMix().old_burst_journeys
    numbers = {p.tracking_number for j in burst.values() for p in j.packages}
    messages = [i for i in items if i.traffic == "old_burst"]
    assert simulator.burst_at == pytest.approx(40 * TrafficMix().old_burst_at)
    assert all(simulator.burst_at <= i.due < simulator.burst_at + 3 for i in messages)
    fc_types: Counter[str] = Counter()
    for item in messages:
        if item.kind == "fc":
            event = parse_fulfillment_event(item.value)
            assert event.order_id in burst
            fc_types[event.type] += 1
            age = T0 + timedelta(seconds=item.due) - event.occurred_at
            assert timedelta(days=1) < age < timedelta(days=2), age
    assert fc_types["order_placed"] == fc_types["order_processing"] == len(burst)
    assert fc_types["package_shipped"] == len(numbers)
    delivered = set()
    for item, scan in scans_of(items):
        if scan.tracking_number in numbers:
            assert item.traffic == "old_burst"
            assert timedelta(days=1) < scan.ingested_at - scan.occurred_at < timedelta(days=2)
            delivered |= {scan.tracking_number} if scan.status.value == "delivered" else set()
    assert delivered == numbers  # whole journeys, delivered


def test_type_confused_payloads_are_refused_as_invalid_fields_and_their_originals_are_read():
    simulator, items = simulated(type_confused=0.5)
    confused = [i for i in items if i.kind == "type_confused"]
    assert sorted(i.value for i in confused) == sorted(simulator.type_confused)
    assert {source(i) for i in confused} == {"easypost", "aftership", "shippo"}
    originals = {(i.key, source(i)) for i in items if i.kind == "scan"}
    for item in confused:
        orjson.loads(item.value)  # well-formed JSON of a real format
        with pytest.raises(InvalidPayload) as refused:
            parse_carrier_payload(source(item), item.value, T0)
        assert refused.value.reason == "invalid_field", refused.value
        assert (item.key, source(item)) in originals  # nothing is lost: the good copy arrives too
    # The documented confusions are among them.
    bodies = [orjson.loads(i.value) for i in confused]
    assert any(isinstance(b.get("description"), dict) for b in bodies)
    assert any(isinstance(b.get("event"), list) for b in bodies)
    assert any(isinstance(h.get("status"), list) for b in bodies
               for h in b.get("data", {}).get("tracking_history", []))


def test_unannounced_labels_are_never_announced():
    simulator, items = simulated()
    assert simulator.unannounced
    assert not set(simulator.unannounced) & set(announcements(items))
    scanned = {scan.tracking_number for _, scan in scans_of(items)}
    assert set(simulator.unannounced) <= scanned


def test_promises_are_dates_where_the_customer_lives():
    """A same-day order placed at 20:00 UTC to Tokyo is promised Tokyo's today, which is UTC's tomorrow."""
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    evening = datetime(2026, 11, 2, 20, 0, tzinfo=timezone.utc)
    simulator = TrafficSimulator(seed=1, start=evening, mix=TrafficMix(trouble=0, late_feed=0))
    for n in range(200):
        for item in simulator.order_script(n * 0.1):
            body = orjson.loads(item.value) if item.kind == "fc" else {}
            if body.get("type") == "order_placed":
                local = datetime.fromisoformat(body["occurred_at"]).astimezone(ZoneInfo(body["delivery_time_zone"]))
                days = {"same_day": 0, "one_day": 1, "two_day": 2}.get(body["service_level"], 5)
                assert body["promised_delivery_date"] == (local + timedelta(days=days)).date().isoformat()


def delay_notices_through_the_rules(simulator: TrafficSimulator, items: list[Outgoing]) -> tuple[list, Counter]:
    """The traffic through the rules in one process (feed latency measured as the worker does,
    a tick after every message): the false delay notices, and the deserved ones by type."""
    from models.effects import NotificationCommand, NotificationType, TrackingLink
    from models.events import ClockTick
    from models.feed_latency import FeedLatency
    from models.order import apply
    from models.routing import TrackingEntry, link_tracking, route_scan
    from models.thresholds import parse_thresholds

    rules = parse_thresholds((Path(__file__).parents[2] / "config" / "detection-demo.toml").read_text())
    latency = FeedLatency(rules)
    orders: dict = {}
    tracking: dict = {}
    false: list = []
    deserved: Counter = Counter()

    def apply_all(events):
        for event in events:
            orders[event.order_id], effects = apply(orders.get(event.order_id), event, rules, latency)
            for effect in effects:
                if isinstance(effect, TrackingLink):
                    tracking[effect.tracking_number], released = link_tracking(
                        tracking.setdefault(effect.tracking_number, TrackingEntry()), effect)
                    apply_all(released)
                elif isinstance(effect, NotificationCommand) and (
                        effect.type is NotificationType.delayed
                        or (effect.type is NotificationType.exception and effect.reason == "lost")):
                    if simulator.deserves_delay_notice(effect.order_id, effect.package_id):
                        deserved[effect.type] += 1
                    else:
                        journey = simulator.journeys.get(effect.order_id)
                        false.append((effect.order_id, effect.package_id, effect.type.value, effect.reason,
                                      journey and (journey.traffic, journey.trouble), str(effect.occurred_at),
                                      str(effect.caused_by_ingested_at)))

    for item in items:
        seen_at = T0 + timedelta(seconds=item.due)
        try:
            if item.kind == "fc":
                apply_all([parse_fulfillment_event(item.value).model_copy(update={"ingested_at": seen_at})])
            elif item.kind == "scan":
                for scan in parse_carrier_payload(source(item), item.value, seen_at):
                    tracking[item.key.decode()], matched = route_scan(
                        tracking.setdefault(item.key.decode(), TrackingEntry()), scan)
                    apply_all(matched)
        except InvalidPayload:
            continue
        for order_id, state in list(orders.items()):
            if state.next_deadline and state.next_deadline <= seen_at:
                apply_all([ClockTick(event_id=f"t{order_id}{seen_at}", order_id=order_id, occurred_at=seen_at)])
    end = T0 + timedelta(seconds=items[-1].due + 60)
    apply_all([ClockTick(event_id=f"end{o}", order_id=o, occurred_at=end) for o in list(orders)])
    return false, deserved


def test_live_journeys_that_meet_their_deadlines_get_no_delay_notice_through_the_rules():
    from models.effects import NotificationType

    simulator, items = simulated(late_feed=0, old_burst_journeys=0)
    false, deserved = delay_notices_through_the_rules(simulator, items)
    assert not false
    assert deserved[NotificationType.delayed] and deserved[NotificationType.exception]


def test_late_feeds_and_old_bursts_get_no_delay_notice_through_the_rules():
    simulator, items = simulated()
    false, _ = delay_notices_through_the_rules(simulator, items)
    assert not false
