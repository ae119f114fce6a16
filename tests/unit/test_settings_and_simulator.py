from __future__ import annotations

from collections import Counter
from pathlib import Path

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


def test_simulated_orders_reach_every_update_type_and_detection():
    """Through the rules in one process, with the demo's thresholds, after the traffic has settled."""
    from datetime import timedelta

    from models.effects import Alert, AlertKind, NotificationCommand, NotificationType, TrackingLink
    from models.events import ClockTick
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
    items = traffic(5, seconds=40)
    orders: dict = {}
    tracking: dict = {}
    told, opened = Counter(), Counter()

    def apply_all(events):
        for event in events:
            orders[event.order_id], effects = apply(orders.get(event.order_id), event, rules)
            for effect in effects:
                if isinstance(effect, NotificationCommand):
                    told[effect.type] += 1
                elif isinstance(effect, Alert) and effect.state == "open":
                    opened[effect.alert_kind] += 1
                elif isinstance(effect, TrackingLink):
                    entry = tracking.setdefault(effect.tracking_number, TrackingEntry())
                    tracking[effect.tracking_number], released = link_tracking(entry, effect)
                    apply_all(released)

    def give_up_unmatched(now):
        """The router's timer: held scans that found no order within the bound give up."""
        check = UnmatchedCheck(now=now, bound=timedelta(hours=rules.unmatched_scan_hours))
        for number, entry in tracking.items():
            if (due := unmatched_due(entry, check.bound)) is not None and due <= now:
                tracking[number], expired = expire_held(entry, check)
                for effect in unmatched_effects(expired, check):
                    if isinstance(effect, Alert) and effect.state == "open":
                        opened[effect.alert_kind] += 1

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
        give_up_unmatched(seen_at)
        # The worker's timer: ticks for every order whose deadline has passed.
        for order_id, state in list(orders.items()):
            if state.next_deadline and state.next_deadline <= seen_at:
                apply_all([ClockTick(event_id=f"t{order_id}{seen_at}", order_id=order_id, occurred_at=seen_at)])
    end = T0 + timedelta(seconds=items[-1].due + 60)
    give_up_unmatched(end)
    apply_all([ClockTick(event_id=f"end{o}", order_id=o, occurred_at=end) for o in list(orders)])
    assert set(told) == set(NotificationType), set(NotificationType) - set(told)
    assert set(opened) == set(AlertKind), set(AlertKind) - set(opened)


def test_documented_threshold_file_holds_the_defaults():
    from pathlib import Path

    from models.thresholds import Thresholds, parse_thresholds
    text = (Path(__file__).parents[2] / "config" / "detection.toml").read_text()
    assert parse_thresholds(text) == Thresholds()


def test_a_threshold_file_overrides_only_what_it_names():
    from datetime import timedelta

    from models.thresholds import parse_thresholds
    rules = parse_thresholds("feedback_after_hours = 24\n[service_levels.standard]\nstale_after_hours = 12\n")
    assert rules.feedback_after_hours == 24
    assert rules.stale_after("standard", "ups") == timedelta(hours=12)
    assert rules.stale_after("two_day", "ups") == timedelta(hours=36)
    assert rules.level("standard").lost_after_hours == 336
