"""One split order through every update type, on the real broker, in wall-clock time.

The worker runs with thresholds of seconds (and a tick every half second), so the
time-driven updates (warehouse delay, carrier pickup delay, feedback request) happen
while the test waits. The customer asked for SMS and push and is in quiet hours, so each
command is deferred to the end of them; a second customer opted out of "shipped".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest

from models import topics
from models.effects import NotificationType
from tests.integration.conftest import Pipeline, preferences_stored, produce, sink_caught_up

pytestmark = pytest.mark.integration

THRESHOLDS = """
feedback_after_hours = 0.0014   # 5 s
feed_allowance_start_minutes = 0.0167  # 1 s between the ops alert and the customer's notice
feed_allowance_floor_minutes = 0.0167
# A fresh deployment: no lane has measured the carrier's dates yet. The production default
# holds a late carrier date from the customer until they are (tests/unit/test_transit.py);
# this journey tells it at once, so that every update type is heard.
estimate_after_promise_hold_unmeasured = false
[service_levels.standard]
pickup_delay_1_hours = 0.0011   # 4 s
pickup_delay_2_hours = 0.0022   # 8 s
stale_after_hours = 1
lost_after_hours = 2
"""
ZONE = ZoneInfo("Asia/Tokyo")
CONTACT_EMAIL = "hanako.yamada@example.jp"
CONTACT_PHONE = "+81 90 1234 5678"


def now() -> str:
    return datetime.now(UTC).isoformat()


def fc(body: dict) -> tuple:
    return (topics.FC_EVENTS, body["order_id"].encode(), orjson.dumps(body), [])


def scans(tracking: str, *steps: tuple[str, str, str, dict], estimate: str | None = None) -> tuple:
    """A regional carrier's generic JSON message with these events, timed now."""
    events = [{"status": status, "code": code, "message": message, "occurred_at": now(), **extra}
              for status, code, message, extra in steps]
    body = {"carrier": "ontrac", "tracking_number": tracking, "events": events, "estimated_delivery": estimate}
    return (topics.CARRIER_SCANS_RAW, tracking.encode(), orjson.dumps(body), [(topics.SOURCE_HEADER, b"generic")])


def placed(order_id: str, customer: str, promise: str, ship_in_seconds: float) -> tuple:
    return fc({"type": "order_placed", "event_id": f"{order_id}-placed", "order_id": order_id, "occurred_at": now(),
               "customer_id": customer, "seller_id": "SELLER-1", "fulfillment_center": "FC-A",
               "service_level": "standard", "promised_delivery_date": promise,
               "ship_by": (datetime.now(UTC) + timedelta(seconds=ship_in_seconds)).isoformat(),
               "items": [{"sku": "SKU-1", "quantity": 1}, {"sku": "SKU-2", "quantity": 1}],
               # What order systems send along: contact data trackline must never keep.
               "customer_email": CONTACT_EMAIL, "shipping_address": {"phone": CONTACT_PHONE, "city": "Tokyo"}})


def shipped(order_id: str, package: str, tracking: str, skus: list[str]) -> tuple:
    return fc({"type": "package_shipped", "event_id": f"{package}-shipped", "order_id": order_id,
               "occurred_at": now(), "package_id": package, "carrier": "OnTrac", "tracking_number": tracking,
               "skus": skus})


def commands(run: Pipeline, order_id: str) -> list[dict]:
    return [c for c in run.delivered() if c["order_id"] == order_id]


def wait_for_command(run: Pipeline, order_id: str, type_: str, count: int = 1) -> None:
    run.wait_for(lambda: sum(c["type"] == type_ for c in commands(run, order_id)) >= count, 60,
                 f"{order_id} {type_} #{count}")


@pytest.fixture(scope="module")
def journey(tmp_path_factory) -> dict:
    from broker import clients
    from broker.embedded import EmbeddedBroker
    from tests.integration.conftest import PARTITIONS

    with EmbeddedBroker() as embedded:
        clients.create_topics(embedded.bootstrap, PARTITIONS)
        data = tmp_path_factory.mktemp("journey") / "data"
        run = Pipeline(embedded.bootstrap, data)
        (data / "thresholds.toml").write_text(THRESHOLDS)
        run.env.update(TRACKLINE_THRESHOLDS=str(data / "thresholds.toml"), TRACKLINE_TICK_INTERVAL="0.5")
        local = datetime.now(ZONE)
        quiet_end = (local + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
        today = datetime.now(UTC).date()
        promise = (today + timedelta(days=3)).isoformat()
        try:
            run.start("worker", "sink", "notifier")
            produce(run.bootstrap, [
                (topics.CUSTOMER_PREFERENCES, b"CUST-J", orjson.dumps({
                    "customer_id": "CUST-J", "channels": ["sms", "push"], "locale": "ja-JP", "time_zone": str(ZONE),
                    "email": CONTACT_EMAIL, "phone": CONTACT_PHONE,
                    "quiet_hours": {"start": (local - timedelta(hours=1)).strftime("%H:00"),
                                    "end": quiet_end.strftime("%H:00")}}), []),
                (topics.CUSTOMER_PREFERENCES, b"CUST-K", orjson.dumps({
                    "customer_id": "CUST-K", "opted_out": ["shipped"]}), []),
                # Refused (no such zone) and dead-lettered: its copy must not keep the contact data.
                (topics.CUSTOMER_PREFERENCES, b"CUST-Z", orjson.dumps({
                    "customer_id": "CUST-Z", "time_zone": "Mars/Base", "email": CONTACT_EMAIL,
                    "phone": CONTACT_PHONE}), []),
            ])
            preferences_stored(run, ["CUST-J", "CUST-K"])  # before their orders: two topics, read side by side
            produce(run.bootstrap, [
                placed("ORD-J", "CUST-J", promise, ship_in_seconds=4),
                fc({"type": "order_processing", "event_id": "ORD-J-proc", "order_id": "ORD-J", "occurred_at": now()}),
                placed("ORD-K", "CUST-K", promise, ship_in_seconds=3600),
            ])
            # Nothing leaves the warehouse: at ship-by the customer hears of the delay.
            wait_for_command(run, "ORD-J", "delayed")
            lookup_while_late = run.lookup("ORD-J")
            produce(run.bootstrap, [
                shipped("ORD-J", "J-P1", "OT1", ["SKU-1"]),
                shipped("ORD-K", "K-P1", "OT9", []), scans("OT9", ("in_transit", "DEP", "Departed facility", {})),
                scans("OT1", ("in_transit", "DEP", "Departed facility", {}),
                      estimate=(today + timedelta(days=1)).isoformat()),  # two days early: news
            ])
            wait_for_command(run, "ORD-J", "estimate_revised")
            produce(run.bootstrap, [scans("OT1", ("out_for_delivery", "OFD", "Out for delivery", {}))])
            produce(run.bootstrap, [scans("OT1", ("attempt_failed", "NA", "Recipient not available", {}))])
            produce(run.bootstrap, [scans("OT1", ("available_for_pickup", "PUA", "Held at 400 Main St",
                                                  {"pickup_code": "4711", "location": "400 Main St"}))])
            produce(run.bootstrap, [scans("OT1", ("delivered", "DEL", "Picked up by recipient", {}))])
            wait_for_command(run, "ORD-J", "delivered")
            # Package 2 ships only now, so its pickup delays (seconds) cannot overtake package 1's
            # story on a slow machine. Its carrier never collects it: level 2 tells the customer.
            produce(run.bootstrap, [shipped("ORD-J", "J-P2", "OT2", ["SKU-2"])])
            wait_for_command(run, "ORD-J", "delayed", 2)
            produce(run.bootstrap, [scans("OT2", ("in_transit", "DEP", "Departed facility", {}),
                                          estimate=(today + timedelta(days=5)).isoformat())])
            wait_for_command(run, "ORD-J", "delayed", 3)
            produce(run.bootstrap, [scans("OT2", ("exception", "DMG", "Package damaged in transit", {}))])
            wait_for_command(run, "ORD-J", "exception")
            produce(run.bootstrap, [scans("OT2", ("in_transit", "REP", "Repackaged", {}))])
            produce(run.bootstrap, [scans("OT2", ("out_for_delivery", "OFD", "Out for delivery", {}))])
            produce(run.bootstrap, [scans("OT2", ("delivered", "DEL", "Left at front door", {"location": "Osaka"}))])
            wait_for_command(run, "ORD-J", "feedback_request")
            produce(run.bootstrap, [fc({"type": "return_requested", "event_id": "ret", "order_id": "ORD-J",
                                        "occurred_at": now(), "return_id": "J-R1", "skus": ["SKU-2"],
                                        "reason": "damaged", "carrier": "USPS", "tracking_number": "9202RET1"})])
            wait_for_command(run, "ORD-J", "return_started")
            produce(run.bootstrap, [(topics.CARRIER_SCANS_RAW, b"9202RET1", orjson.dumps(
                {"carrier": "usps", "tracking_number": "9202RET1",
                 "events": [{"status": "in_transit", "code": "ACC", "message": "Accepted", "occurred_at": now()}]}),
                [(topics.SOURCE_HEADER, b"generic")])])
            wait_for_command(run, "ORD-J", "return_in_transit")
            produce(run.bootstrap, [
                fc({"type": "return_received", "event_id": "recv", "order_id": "ORD-J", "occurred_at": now(),
                    "return_id": "J-R1"}),
                fc({"type": "refund_issued", "event_id": "refund", "order_id": "ORD-J", "occurred_at": now(),
                    "return_id": "J-R1", "amount": "24.90", "currency": "USD"}),
            ])
            wait_for_command(run, "ORD-J", "refund_issued")
            run.wait_for(lambda: len(commands(run, "ORD-K")) >= 2, 30, "ORD-K's commands")
            final_lookup = run.lookup("ORD-J")
            sink_caught_up(run)
            run.stop("worker", "notifier", "sink")
            return {
                "J": commands(run, "ORD-J"), "K": commands(run, "ORD-K"), "quiet_end": quiet_end, "today": today,
                "lookup_while_late": lookup_while_late, "final_lookup": final_lookup,
                "alerts": run.query("SELECT package_id, status, previous_status FROM history FINAL "
                                    "WHERE order_id = 'ORD-J' AND record_type = 'alert' ORDER BY occurred_at"),
                "outcomes": run.query("SELECT order_id, status, detail FROM history FINAL "
                                      "WHERE record_type = 'notification' ORDER BY order_id, status"),
                "dead_letters": run.query("SELECT source_topic, reason, message_key, detail FROM dead_letters FINAL"),
                "tables": {
                    "alerts": run.query("SELECT kind, state, package_id, seller_id, due_at FROM alerts FINAL "
                                        "WHERE order_id = 'ORD-J'"),
                    "notifications": run.query("SELECT order_id, type, outcome, channels, send_after, decided_at, "
                                               "caused_by_ingested_at FROM notifications FINAL"),
                    "deliveries": run.query("SELECT order_id, type, outcome FROM notification_deliveries FINAL"),
                    "shipments": run.query("SELECT package_id, milestone, seller_id, fulfillment_center, "
                                           "service_level, shipped_at, accepted_at, delivered_at, promised "
                                           "FROM shipments FINAL WHERE order_id = 'ORD-J' ORDER BY package_id"),
                    "estimates": run.query("SELECT package_id, source, estimate, previous, promised FROM "
                                           "delivery_estimates FINAL WHERE order_id = 'ORD-J' "
                                           "ORDER BY occurred_at, package_id"),
                    "metrics": run.query("SELECT metric, sum(value) AS total FROM pipeline_metrics GROUP BY metric"),
                    # Every column of every row, as text: the contact data sent in must be nowhere.
                    "contacts": run.query(
                        "SELECT count() AS n FROM history WHERE position(toString(tuple(*)), 'hanako') > 0 "
                        "OR position(toString(tuple(*)), '1234 5678') > 0 OR position(toString(tuple(*)), '@') > 0"),
                    "contacts_in_dead_letters": run.query(
                        "SELECT count() AS n FROM dead_letters WHERE position(toString(tuple(*)), 'hanako') > 0 "
                        "OR position(toString(tuple(*)), '1234 5678') > 0"),
                    "contacts_in_logs": [log.name for log in run.logs.glob("*.log")
                                         if "hanako" in log.read_text() or "1234 5678" in log.read_text()],
                },
            }
        finally:
            run.stop()


def test_the_customer_hears_every_update_type_in_order_each_once(journey):
    assert [(c["type"], c["package_id"]) for c in journey["J"]] == [
        ("order_confirmed", ""), ("estimate_set", ""), ("delayed", ""),
        ("shipped", "J-P1"), ("estimate_revised", "J-P1"),
        ("out_for_delivery", "J-P1"), ("attempt_failed", "J-P1"), ("ready_for_pickup", "J-P1"),
        ("delivered", "J-P1"),
        ("shipped", "J-P2"), ("delayed", "J-P2"), ("delayed", "J-P2"), ("exception", "J-P2"),
        ("out_for_delivery", "J-P2"), ("delivered", "J-P2"), ("feedback_request", ""),
        ("return_started", "J-R1"), ("return_in_transit", "J-R1"), ("return_received", "J-R1"),
        ("refund_issued", ""),
    ]
    assert {c["type"] for c in journey["J"]} == {t.value for t in NotificationType}


def test_each_update_says_what_the_customer_needs(journey):
    by = {(c["type"], c["package_id"], c["reason"]): c for c in journey["J"]}
    first = {(c["type"], c["package_id"]): c for c in reversed(journey["J"])}
    assert first[("delayed", "")]["reason"] == "Your order has not left the warehouse yet."
    assert first[("ready_for_pickup", "J-P1")]["pickup_code"] == "4711"
    assert first[("ready_for_pickup", "J-P1")]["location"] == "400 Main St"
    assert first[("attempt_failed", "J-P1")]["next_step"].startswith("The carrier will try again")
    late = by[("delayed", "J-P2", "The carrier now expects to deliver after the promised date.")]
    assert late["estimated_delivery"] == (journey["today"] + timedelta(days=5)).isoformat()
    assert "replacement" in by[("exception", "J-P2", "damaged")]["next_step"]
    assert first[("delivered", "J-P2")]["location"] == "Left at front door, Osaka"
    assert first[("refund_issued", "")]["refund_amount"] == "24.90"


def test_quiet_hours_defer_every_command_to_their_end_on_the_chosen_channels(journey):
    assert {c["send_after"] for c in journey["J"]} == {journey["quiet_end"].astimezone(UTC).isoformat()
                                                       .replace("+00:00", "Z")}
    assert all(c["channels"] == ["sms", "push"] and c["locale"] == "ja-JP" for c in journey["J"])


def test_an_opted_out_update_is_not_sent_but_recorded_as_suppressed(journey):
    assert [c["type"] for c in journey["K"]] == ["order_confirmed", "estimate_set"]
    k_rows = {(r["status"], r["detail"]) for r in journey["outcomes"] if r["order_id"] == "ORD-K"}
    assert ("shipped", "suppressed: opted_out") in k_rows
    j_rows = [r["detail"] for r in journey["outcomes"] if r["order_id"] == "ORD-J"]
    assert len(j_rows) == 20 and all(d.startswith("deferred until") for d in j_rows)


def test_ops_see_each_detection_open_and_close(journey):
    opened = [(r["package_id"], r["status"]) for r in journey["alerts"] if r["previous_status"] == "open"]
    assert opened == [("", "warehouse_delay"), ("J-P2", "pickup_delay_1"), ("J-P2", "pickup_delay_2"),
                      ("J-P2", "estimate_after_promise"), ("J-P2", "carrier_exception")]
    closed = {(r["package_id"], r["status"]) for r in journey["alerts"] if r["previous_status"] == "closed"}
    assert closed == set(opened)


def test_the_order_lookup_shows_open_alerts_and_estimates(journey):
    status, late = journey["lookup_while_late"]
    assert status == 200 and [a["kind"] for a in late["open_alerts"]] == ["warehouse_delay"]
    status, final = journey["final_lookup"]
    assert status == 200 and final["status"] == "refunded" and final["open_alerts"] == []
    packages = {p["package_id"]: p for p in final["packages"]}
    assert packages["J-P2"]["carrier_current_estimate"] == (journey["today"] + timedelta(days=5)).isoformat()
    assert packages["J-P2"]["estimate_source"] == "carrier"
    assert packages["J-R1"]["kind"] == "return"


def test_bad_preferences_are_dead_letters_with_the_reason(journey):
    (letter,) = journey["dead_letters"]
    assert (letter["source_topic"], letter["reason"], letter["message_key"]) == (
        topics.CUSTOMER_PREFERENCES, "invalid_field", "CUST-Z")
    assert "Mars/Base" in letter["detail"]


def test_clickhouse_tables_carry_each_record_type_typed(journey):
    tables = journey["tables"]
    opened = [(a["package_id"], a["kind"]) for a in tables["alerts"] if a["state"] == "open"]
    assert sorted(opened) == sorted([("", "warehouse_delay"), ("J-P2", "pickup_delay_1"), ("J-P2", "pickup_delay_2"),
                                     ("J-P2", "estimate_after_promise"), ("J-P2", "carrier_exception")])
    assert all(a["seller_id"] == "SELLER-1" and a["due_at"] for a in tables["alerts"])
    j = [n for n in tables["notifications"] if n["order_id"] == "ORD-J"]
    assert len(j) == 20 and {n["outcome"] for n in j} == {"deferred"} and {n["channels"] for n in j} == {"sms,push"}
    assert all(n["decided_at"] >= n["caused_by_ingested_at"] for n in j)
    k = {(n["type"], n["outcome"]) for n in tables["notifications"] if n["order_id"] == "ORD-K"}
    assert k == {("order_confirmed", "queued"), ("estimate_set", "queued"), ("shipped", "suppressed")}
    # Every command the notifier delivered has its delivery row.
    assert sorted((d["order_id"], d["type"]) for d in tables["deliveries"]) == sorted(
        [(c["order_id"], c["type"]) for c in journey["J"] + journey["K"]])
    assert [(s["package_id"], s["milestone"], s["seller_id"], s["fulfillment_center"], s["service_level"])
            for s in tables["shipments"]] == [("J-P1", "delivered", "SELLER-1", "FC-A", "standard"),
                                              ("J-P2", "delivered", "SELLER-1", "FC-A", "standard")]
    assert all(s["shipped_at"] and s["accepted_at"] and s["delivered_at"] for s in tables["shipments"])
    # Package 1's estimate: the promise when it shipped, then the carrier's (same millisecond, so by source).
    p1 = {e["source"]: e["estimate"] for e in tables["estimates"] if e["package_id"] == "J-P1"}
    today = journey["today"]
    assert p1 == {"promise": (today + timedelta(days=3)).isoformat(),
                  "carrier": (today + timedelta(days=1)).isoformat()}
    metrics = {m["metric"]: m["total"] for m in tables["metrics"]}
    assert metrics["rows_written"] > 0 and "history_lag_seconds" in metrics
    assert tables["contacts"] == [{"n": 0}]
    # Nor in the DLQ's copy of the refused preferences (sent with both), nor in any process's log.
    assert tables["contacts_in_dead_letters"] == [{"n": 0}]
    assert tables["contacts_in_logs"] == []
