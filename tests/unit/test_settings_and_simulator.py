from __future__ import annotations

import functools
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from models import topics
from models.carriers import parse_carrier_payload
from models.errors import InvalidPayload
from models.fulfillment import parse_fulfillment_event
from models.preferences import parse_preferences
from models.settings import Settings
from tests.conftest import T0
from trackline.simulator import TrafficMix, TrafficSimulator


def test_flags_override_environment_which_overrides_defaults(tmp_path):
    env = {"TRACKLINE_KAFKA": "k1:9092", "TRACKLINE_PARTITIONS": "8", "TRACKLINE_DATA_DIR": str(tmp_path)}
    settings = Settings.from_env(env, kafka="k2:9092", partitions=None)
    assert settings.kafka == "k2:9092" and settings.partitions == 8
    assert settings.clickhouse_dsn == f"chdb://{tmp_path}/clickhouse"
    assert Settings.from_env({}).embedded_broker
    assert Settings.from_env({}).data_dir == Path("data").resolve()


@pytest.mark.parametrize("given, opened", [
    ("chdb://data/clickhouse", f"chdb://{Path('data/clickhouse').resolve()}"),  # relative: from here
    ("chdb:///srv/ch?x=1", "chdb:///srv/ch?x=1"),
    ("chdb://memory/analytics", "chdb://memory/analytics"),
    ("https://ch.example.com:8443/trackline", "https://ch.example.com:8443/trackline"),
])
def test_a_relative_chdb_path_opens_that_directory_not_a_database_named_after_it(given, opened):
    # clickhouse-connect reads chdb://data/clickhouse as database "clickhouse" in directory "data".
    assert Settings.from_env({"TRACKLINE_CLICKHOUSE": given}).clickhouse_dsn == opened


def traffic(seed: int, seconds: float = 60, mix: TrafficMix | None = None):
    return list(TrafficSimulator(seed=seed, mix=mix, start=T0).stream(orders_per_second=5, duration=seconds))


def test_same_seed_same_traffic():
    assert [(o.topic, o.key, o.value) for o in traffic(3, 10)] == [(o.topic, o.key, o.value) for o in traffic(3, 10)]
    assert [o.value for o in traffic(3, 10)] != [o.value for o in traffic(4, 10)]


def test_traffic_is_in_due_order_and_has_the_messy_parts_of_real_traffic():
    items = traffic(7, mix=TrafficMix(malformed=0.2))
    assert [i.due for i in items] == sorted(i.due for i in items)
    scans = [i for i in items if i.kind == "scan"]
    assert len(scans) - len({i.value for i in scans}) > 0, "expected webhook retries"
    malformed = [i for i in items if i.kind == "malformed"]
    assert malformed
    for item in malformed:
        try:
            if item.topic == topics.FC_EVENTS:
                parse_fulfillment_event(item.value)
            else:
                parse_carrier_payload(dict(item.headers)[topics.SOURCE_HEADER].decode(), item.value, T0)
        except InvalidPayload:
            continue
        raise AssertionError(f"simulated malformed payload parsed: {item.value[:80]!r}")
    # Every good payload parses.
    kinds = Counter(i.kind for i in items)
    assert kinds["fc"] and kinds["scan"]
    for item in items:
        if item.kind == "scan":
            assert parse_carrier_payload(dict(item.headers)[topics.SOURCE_HEADER].decode(), item.value, T0)
        elif item.kind == "fc":
            parse_fulfillment_event(item.value)
        elif item.kind == "preferences":
            assert parse_preferences(item.value).customer_id == item.key.decode()


def test_some_scans_come_before_their_shipment_is_announced():
    items = traffic(7)
    shipped_at = {}
    early = 0
    for item in items:
        if item.kind == "fc" and b"package_shipped" in item.value:
            import orjson
            shipped_at[orjson.loads(item.value)["tracking_number"]] = item.due
    for item in items:
        if item.kind == "scan" and item.due < shipped_at.get(item.key.decode(), -1):
            early += 1
    assert early > 0


def test_traffic_comes_from_every_supported_aggregator_and_the_generic_format():
    sources = Counter(dict(i.headers)[topics.SOURCE_HEADER] for i in traffic(7) if i.kind == "scan")
    assert set(sources) == {b"easypost", b"aftership", b"shippo", b"generic", b"x12-214"}


# What a customer of each kind of journey hears, worked out from what the simulator scripts
# it to do (trackline/simulator.py, ``_order`` and ``_troubled_journey``) with the demo's
# thresholds (config/detection-demo.toml: pickup delay 6 s / 12 s, stale 15 s, lost 30 s,
# feedback 20 s after delivery, 3 s feed allowance at first), and the README's tables of
# update types and detections; not by running the rules another way. For journeys of one
# package; the commands are trackline's decisions, before each customer's preferences. The
# feeds are on time (no carrier an hour late, no burst of old journeys): either widens the
# feed allowance to its cap, and a delay is then told only after the run.
CONFIRMED = ["order_confirmed", "estimate_set"]
EXPECTED_UPDATES = {
    # Placed, shipped, scanned to the door: the happy path, then a feedback request.
    "": [*CONFIRMED, "shipped", "out_for_delivery", "delivered", "feedback_request"],
    # Cancelled 0.3 s after it was placed, before anything shipped: no update type says
    # "cancelled", and nothing follows the confirmation.
    "cancelled": CONFIRMED,
    # Ship-by 3 s after placing, shipped at 10 s: the warehouse delay is told (3 s + 3 s
    # allowance), then the journey goes on as usual.
    "warehouse_delay": [*CONFIRMED, "delayed", "shipped", "out_for_delivery", "delivered", "feedback_request"],
    # Label at 0.3 s, first carrier scan at 16 s: the second pickup threshold (12 s) passes
    # and is told (level 2 is customer-facing); then delivered, without an out-for-delivery scan.
    "pickup_delay": [*CONFIRMED, "shipped", "delayed", "delivered", "feedback_request"],
    # 18.5 s without a scan between the hub scan and the departure: stale tracking is for ops
    # only, and 18.5 s is short of the lost threshold. The hub's own code (HUB7) is unknown.
    "stale": [*CONFIRMED, "shipped", "delivered", "feedback_request"],
    # Arrived at a facility, then silence: presumed lost after 30 s, told as an exception.
    "lost": [*CONFIRMED, "shipped", "exception"],
    # Straight into a locker, collected: ready for pickup instead of out for delivery.
    "locker": [*CONFIRMED, "shipped", "ready_for_pickup", "delivered", "feedback_request"],
    # Out for delivery, nobody home, held at the post office, collected.
    "attempt_failed": [*CONFIRMED, "shipped", "out_for_delivery", "attempt_failed", "ready_for_pickup", "delivered",
                       "feedback_request"],
    # "Incorrect address" (the customer can act on it), corrected, then delivered.
    "address_exception": [*CONFIRMED, "shipped", "exception", "out_for_delivery", "delivered", "feedback_request"],
    # The carrier's estimate, on every webhook from the first, is two days after the promise:
    # a late estimate is a delay; two days before it: the estimate is revised.
    "late_estimate": [*CONFIRMED, "shipped", "delayed", "out_for_delivery", "delivered", "feedback_request"],
    "early_estimate": [*CONFIRMED, "shipped", "estimate_revised", "out_for_delivery", "delivered",
                       "feedback_request"],
}


@functools.cache
def through_the_rules(seed: int = 5, seconds: float = 40, **mix: float):
    """The simulated traffic through trackline's rules in one process: routing and linking as
    the router does, a deadline tick for every due order after each message and every second
    for 90 s after the last, as the worker's timer. Returns the simulator (its ground truth),
    the commands decided for each order in the order decided, and the alert kinds opened."""
    from models.effects import Alert, NotificationCommand, TrackingLink
    from models.events import ClockTick
    from models.feed_latency import FeedLatency
    from models.order import apply
    from models.routing import (
        TrackingEntry,
        UnmatchedCheck,
        expire_held,
        link_tracking,
        route_scan,
        unmatched_due,
        unmatched_effects,
    )
    from models.thresholds import parse_thresholds

    rules = parse_thresholds((Path(__file__).parents[2] / "config" / "detection-demo.toml").read_text())
    latency = FeedLatency(rules)
    simulator = TrafficSimulator(seed=seed, start=T0, mix=TrafficMix(**mix))
    items = list(simulator.stream(orders_per_second=5, duration=seconds))
    orders: dict = {}
    tracking: dict = {}
    told: dict[str, list] = {}
    opened: Counter = Counter()

    def apply_all(events):
        for event in events:
            orders[event.order_id], effects = apply(orders.get(event.order_id), event, rules, latency)
            for effect in effects:
                if isinstance(effect, NotificationCommand):
                    told.setdefault(effect.order_id, []).append(effect)
                elif isinstance(effect, Alert) and effect.state == "open":
                    opened[effect.alert_kind] += 1
                elif isinstance(effect, TrackingLink):
                    entry = tracking.setdefault(effect.tracking_number, TrackingEntry())
                    tracking[effect.tracking_number], released = link_tracking(entry, effect)
                    apply_all(released)

    def tick(now):
        check = UnmatchedCheck(now=now, bound=timedelta(hours=rules.unmatched_scan_hours))
        for number, entry in tracking.items():
            if (due := unmatched_due(entry, check.bound)) is not None and due <= now:
                tracking[number], expired = expire_held(entry, check)
                opened.update(e.alert_kind for e in unmatched_effects(expired, check)
                              if isinstance(e, Alert) and e.state == "open")
        for order_id, state in list(orders.items()):
            if state.next_deadline and state.next_deadline <= now:
                apply_all([ClockTick(event_id=f"t{order_id}{now}", order_id=order_id, occurred_at=now)])

    for item in items:
        seen_at = T0 + timedelta(seconds=item.due)
        try:
            if item.kind == "fc":
                apply_all([parse_fulfillment_event(item.value).model_copy(update={"ingested_at": seen_at})])
            elif item.kind == "scan":
                source = dict(item.headers)[topics.SOURCE_HEADER].decode()
                for scan in parse_carrier_payload(source, item.value, seen_at):
                    entry = tracking.setdefault(item.key.decode(), TrackingEntry())
                    tracking[item.key.decode()], matched = route_scan(entry, scan)
                    apply_all(matched)
        except InvalidPayload:
            continue
        tick(seen_at)
    for second in range(1, 91):
        tick(T0 + timedelta(seconds=items[-1].due + second))
    return simulator, told, opened


@pytest.mark.parametrize("trouble", list(EXPECTED_UPDATES))
def test_a_customer_hears_what_their_journey_was_scripted_to_do(trouble):
    simulator, told, _ = through_the_rules(late_feed=0, old_burst_journeys=0)
    journeys = [j for j in simulator.journeys.values()
                if j.trouble == trouble and len(j.packages) == (trouble != "cancelled")]
    assert journeys, f"seed 5 has no journey of one package with trouble {trouble!r}"
    for journey in journeys:
        package_id = journey.packages[0].package_id if journey.packages else ""
        commands = told.get(journey.order_id, [])
        assert [c.type.value for c in commands] == EXPECTED_UPDATES[trouble], journey
        # Order-wide updates name no package; the package's own name its package.
        order_wide = {"order_confirmed", "estimate_set", "feedback_request"}
        if trouble == "warehouse_delay":
            order_wide.add("delayed")  # nothing had shipped: the order is late, not a package
        assert {c.package_id for c in commands if c.type.value in order_wide} <= {""}
        assert {c.package_id for c in commands if c.type.value not in order_wide} <= {package_id}
        # A delay notice only where the journey was designed to miss a deadline.
        if any(c.type.value == "delayed" or (c.type.value == "exception" and c.reason == "lost") for c in commands):
            assert simulator.deserves_delay_notice(journey.order_id, package_id)


def test_simulated_orders_reach_every_update_type_and_detection():
    from models.effects import AlertKind, NotificationType

    _, told, opened = through_the_rules()
    types = {c.type for commands in told.values() for c in commands}
    assert types == set(NotificationType), set(NotificationType) - types
    # predicted_late needs a lane model learned from delivered history, which these rules
    # are not given: tests/unit/test_transit.py and the quality run cover it.
    assert set(opened) == set(AlertKind) - {AlertKind.predicted_late}, set(AlertKind) - set(opened)


def test_documented_threshold_file_holds_the_defaults():
    from pathlib import Path

    from models.thresholds import Thresholds, parse_thresholds
    text = (Path(__file__).parents[2] / "config" / "detection.toml").read_text()
    assert parse_thresholds(text) == Thresholds()


def test_a_file_that_sets_the_predicted_late_threshold_means_it_for_every_level_it_leaves_out():
    from models.thresholds import Thresholds, parse_thresholds

    # Built in: one-day, two-day and standard open predicted_late at 0.7 (measured), the others at 0.8.
    levels = ("same_day", "one_day", "two_day", "standard", "locker_pickup")
    assert [Thresholds().late_threshold(level) for level in levels] == [0.8, 0.7, 0.7, 0.7, 0.8]
    # A deployment's own value is not silently beaten by the built-in per-level ones.
    mine = parse_thresholds("predicted_late_probability = 0.9\n")
    assert [mine.late_threshold(level) for level in ("one_day", "two_day", "standard")] == [0.9, 0.9, 0.9]
    # ...unless the file sets a level's too; a level set in part keeps its other defaults.
    both = parse_thresholds("predicted_late_probability = 0.9\n[service_levels.standard]\n"
                            "predicted_late_probability = 0.75\n")
    assert [both.late_threshold(level) for level in ("one_day", "two_day", "standard")] == [0.9, 0.9, 0.75]
    assert both.level("standard").stale_after_hours == Thresholds().level("standard").stale_after_hours
    untouched = parse_thresholds("[service_levels.standard]\nstale_after_hours = 80\n")
    assert untouched.late_threshold("standard") == 0.7


def test_the_route_notices_file_is_the_defaults_with_the_measured_levels_turned_on():
    # config/detection-route-notices.toml must not drift from the defaults in anything else.
    from pathlib import Path

    from models.thresholds import Thresholds, parse_thresholds
    text = (Path(__file__).parents[2] / "config" / "detection-route-notices.toml").read_text()
    route = parse_thresholds(text)
    assert route.predicted_late_route_notice_levels == ["one_day", "two_day", "standard"]
    assert route.model_copy(update={"predicted_late_route_notice_levels": []}) == Thresholds()


def test_a_threshold_file_overrides_only_what_it_names():
    from datetime import timedelta

    from models.thresholds import parse_thresholds
    rules = parse_thresholds("feedback_after_hours = 24\n[service_levels.standard]\nstale_after_hours = 12\n")
    assert rules.feedback_after_hours == 24
    assert rules.stale_after("standard", "ups") == timedelta(hours=12)
    assert rules.stale_after("two_day", "ups") == timedelta(hours=36)
    assert rules.level("standard").lost_after_hours == 336


def test_the_bench_breakdown_charges_waiting_to_no_stage_of_cpu():
    from trackline.bench import breakdown

    before = {"parse": 1.0, "apply": 2.0, "flush_wait": 5.0}
    after = {"parse": 1.5, "apply": 3.0, "flush_wait": 9.0, "produce": 0.25}
    stages = breakdown(before, after, scans=10_000, worker_cpu=2.0)
    assert stages["parse"] == 50.0 and stages["apply"] == 100.0 and stages["produce"] == 25.0
    assert stages["flush_wait"] == 400.0  # waiting for the broker: shown, not counted as CPU
    # produce is wall time (mostly awaiting the producer): 200 us of CPU per scan, 150 of them
    # in the CPU stages, the rest is the worker's other work
    assert stages["other_cpu"] == 50.0


@pytest.mark.parametrize("hour", range(24))
def test_the_bench_journeys_stay_news_however_late_in_the_utc_day_the_run_starts(hour: int) -> None:
    """A bench started at 23:58 UTC waited forever for out-for-delivery commands: the policy
    rightly suppresses that update once its local day is over, which in UTC was two minutes
    later. The customers' zone puts the delivery at 08:00 local, so its day lasts 16 hours more."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from models.detection import end_of_local_day
    from trackline.bench.workload import OUT_FOR_DELIVERY_BEFORE_DELIVERED, customer_zone

    delivered = datetime(2026, 12, 6, hour, tzinfo=UTC)
    zone = customer_zone(delivered)
    local = delivered.astimezone(ZoneInfo(zone))
    assert local.hour == 8
    assert (delivered - OUT_FOR_DELIVERY_BEFORE_DELIVERED).astimezone(ZoneInfo(zone)).date() == local.date()
    assert end_of_local_day(local.date(), zone) - delivered == timedelta(hours=16)
    from trackline.bench import workload

    # The bench's orders carry it: their journeys end an hour before the run started.
    assert parse_fulfillment_event(workload_order()).delivery_time_zone == \
        customer_zone(workload.START + workload.DELIVERED_AFTER)


def workload_order() -> bytes:
    from trackline.bench.workload import order_messages

    (_, _, placed, _), _ = order_messages(0, 1)
    return placed
