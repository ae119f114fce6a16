"""A scripted day of one split order, one cancelled order and bad input, on real engines.

The orders are dated a week ahead of the run: every delay deadline lies in the future, so
this test sees the milestones alone (tests/integration/test_update_journey.py drives the
time-driven ones).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from models import topics
from tests.integration.conftest import Pipeline, notifier_settled, produce, sink_caught_up
from trackline.grafana_sql import expand, variable_defaults

pytestmark = pytest.mark.integration

DASHBOARD = orjson.loads((Path(__file__).parents[2] / "dashboards" / "trackline-overview.json").read_bytes())
EASYPOST = [(topics.SOURCE_HEADER, b"easypost")]
DAY = [(datetime.now(UTC) + timedelta(days=7 + n)).date().isoformat() for n in range(3)]
X12 = (Path(__file__).parents[1] / "payloads" / "x12_214_two_shipments.edi").read_bytes().replace(
    b"20261103", DAY[1].replace("-", "").encode())


def fc(body: dict) -> tuple:
    return (topics.FC_EVENTS, body["order_id"].encode(), orjson.dumps(body), [])


def placed(order_id: str, skus: list[str]) -> tuple:
    return fc({"type": "order_placed", "event_id": f"{order_id}-placed", "order_id": order_id,
               "occurred_at": f"{DAY[0]}T08:00:00Z", "customer_id": "CUST-1", "seller_id": "SELLER-1",
               "fulfillment_center": "FC-A", "service_level": "two_day",
               "promised_delivery_date": DAY[2], "ship_by": f"{DAY[0]}T20:00:00Z",
               "items": [{"sku": s, "quantity": 1} for s in skus]})


def shipped(order_id: str, package: str, carrier: str, tracking: str, skus: list[str],
            at: str = f"{DAY[0]}T12:00:00Z") -> tuple:
    return fc({"type": "package_shipped", "event_id": f"{package}-shipped", "order_id": order_id,
               "occurred_at": at, "package_id": package, "carrier": carrier,
               "tracking_number": tracking, "skus": skus})


JOURNEY = [("pre_transit", f"{DAY[0]}T12:30:00Z", "Label created", ""),
           ("in_transit", f"{DAY[0]}T20:00:00Z", "Arrived at facility", "Memphis"),
           ("out_for_delivery", f"{DAY[2]}T07:10:00Z", "Out for delivery", "Reno"),
           ("delivered", f"{DAY[2]}T13:45:00Z", "Delivered, front porch", "Reno")]


def webhook(carrier: str, tracking: str, steps: int, later_hours: int = 0) -> tuple:
    """An EasyPost tracker.updated Event carrying the first ``steps`` scans of the journey."""
    def shifted(t: str) -> str:
        return (datetime.fromisoformat(t) + timedelta(hours=later_hours)).isoformat()

    details = [{"object": "TrackingDetail", "status": s, "status_detail": None, "message": m,
                "datetime": shifted(t), "tracking_location": {"city": city or None, "state": "NV" if city else None}}
               for s, t, m, city in JOURNEY[:steps]]
    body = {"id": f"evt_{tracking}_{steps}", "object": "Event", "description": "tracker.updated",
            "created_at": shifted(JOURNEY[steps - 1][1]),
            "result": {"object": "Tracker", "tracking_code": tracking, "carrier": carrier,
                       "status": JOURNEY[steps - 1][0], "tracking_details": details}}
    return (topics.CARRIER_SCANS_RAW, tracking.encode(), orjson.dumps(body), EASYPOST)


BAD = [
    (topics.CARRIER_SCANS_RAW, b"1ZBAD", b'{"description": "tracker.upd', EASYPOST),
    (topics.CARRIER_SCANS_RAW, b"XX1", b"<Track>not ours</Track>", [(topics.SOURCE_HEADER, b"carrier-pigeon")]),
    (topics.FC_EVENTS, b"ORD-X", b'{"type": "order_placed", "order_id": "ORD-X"}', []),
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> dict:
    from broker import clients
    from broker.embedded import EmbeddedBroker
    from tests.integration.conftest import PARTITIONS

    with EmbeddedBroker() as embedded:
        clients.create_topics(embedded.bootstrap, PARTITIONS)
        run = Pipeline(embedded.bootstrap, tmp_path_factory.mktemp("e2e") / "data")
        # The scripted journeys are dated a week ahead, so that none of their deadlines
        # passes while the test runs; trackline rejects scans more than an hour ahead of
        # their arrival by default, so this run allows two weeks.
        ahead = run.data_dir / "thresholds.toml"
        ahead.parent.mkdir(parents=True, exist_ok=True)
        ahead.write_text("future_tolerance_minutes = 20160\n")
        run.env.update(TRACKLINE_THRESHOLDS=str(ahead))
        try:
            run.start("worker", "sink", "notifier")
            produce(run.bootstrap, [
                placed("ORD-A", ["SKU-1", "SKU-2"]),
                # The carrier scans package 2 before the warehouse announces it.
                webhook("USPS", "9400A2", 1, later_hours=3),
                shipped("ORD-A", "ORD-A-P1", "UPS", "1ZA1", ["SKU-1"]),
                webhook("UPS", "1ZA1", 1), webhook("UPS", "1ZA1", 2), webhook("UPS", "1ZA1", 2),
                placed("ORD-B", ["SKU-9"]),
                # An LTL carrier's X12 214 interchange reporting two shipments of ORD-C.
                placed("ORD-C", ["SKU-3", "SKU-4"]),
                shipped("ORD-C", "ORD-C-P1", "ODFL", "PRO7731001", ["SKU-3"]),
                shipped("ORD-C", "ORD-C-P2", "ODFL", "PRO7731002", ["SKU-4"]),
                (topics.CARRIER_SCANS_RAW, b"ISA-000000101", X12, [(topics.SOURCE_HEADER, b"x12-214")]),
                fc({"type": "order_cancelled", "event_id": "ORD-B-cancel", "order_id": "ORD-B",
                    "occurred_at": f"{DAY[0]}T09:00:00Z", "reason": "customer request"}),
                *BAD,
            ])
            run.wait_for(lambda: len(run.delivered()) >= 6, 90, "confirmations and first shipment")
            # The second package ships (the fulfillment center's topic) before the first one's
            # last scans are sent (the carriers' topic): the two topics are read side by side, so
            # the story below needs that order in the input, not in the timing.
            produce(run.bootstrap, [shipped("ORD-A", "ORD-A-P2", "USPS", "9400A2", ["SKU-2"],
                                            at=f"{DAY[0]}T15:00:00Z")])
            run.wait_for(lambda: any(c["package_id"] == "ORD-A-P2" and c["type"] == "shipped"
                                     for c in run.delivered()), 60, "the second package shipped")
            produce(run.bootstrap, [
                webhook("UPS", "1ZA1", 3), webhook("UPS", "1ZA1", 4),
                webhook("UPS", "1ZA1", 3),  # a late retry of an older webhook
            ])
            # Two tracking numbers are two partitions, read side by side: package 2's last
            # webhook goes once package 1's delivery is out, so the story has one order.
            run.wait_for(lambda: any(c["package_id"] == "ORD-A-P1" and c["type"] == "delivered"
                                     for c in run.delivered()), 60, "the first package delivered")
            produce(run.bootstrap, [webhook("USPS", "9400A2", 4, later_hours=3)])
            run.wait_for(lambda: len(run.delivered()) >= 18, 90, "all eighteen notifications")
            # The same command delivered twice by Kafka reaches the customer once.
            first = run.delivered()[0]
            produce(run.bootstrap, [(topics.NOTIFICATIONS, first["order_id"].encode(), orjson.dumps(first), [])])
            notifier_settled(run, "dup")  # the repeat was read: a later command on its partition is out
            sink_caught_up(run)
            lookups = {order_id: run.lookup(order_id) for order_id in ("ORD-A", "ORD-B", "ORD-C", "ORD-NOPE")}
            run.stop("worker", "notifier", "sink")
            return {
                "delivered": run.delivered(),
                "lookups": lookups,
                "history": run.query(
                    "SELECT record_type, order_id, package_id, status, previous_status, source, raw_code "
                    "FROM history FINAL ORDER BY occurred_at, record_type"),
                "history_raw_count": run.query("SELECT count() AS n FROM history")[0]["n"],
                "dead_letters": run.query(
                    "SELECT source_topic, reason, payload, message_key FROM dead_letters FINAL ORDER BY reason"),
                "panels": {panel["title"]: run.query(expand(
                    panel["targets"][0]["rawSql"], datetime(2020, 1, 1), datetime(2040, 1, 1),
                    variables={**variable_defaults(DASHBOARD), "order_id": "ORD-A"}))
                    for panel in DASHBOARD["panels"]},
            }
        finally:
            run.stop()


def test_customers_get_exactly_the_milestones_that_happened(finished):
    got = Counter((c["order_id"], c["package_id"], c["type"]) for c in finished["delivered"])
    assert got == Counter({
        ("ORD-A", "", "order_confirmed"): 1, ("ORD-B", "", "order_confirmed"): 1,
        ("ORD-A", "", "estimate_set"): 1, ("ORD-B", "", "estimate_set"): 1, ("ORD-C", "", "estimate_set"): 1,
        ("ORD-C", "ORD-C-P2", "attempt_failed"): 1,
        # The carrier says why the attempt failed (AT702 A1, missed delivery): the customer hears it.
        ("ORD-C", "ORD-C-P2", "exception"): 1,
        ("ORD-A", "ORD-A-P1", "shipped"): 1, ("ORD-A", "ORD-A-P2", "shipped"): 1,
        ("ORD-A", "ORD-A-P1", "out_for_delivery"): 1, ("ORD-A", "ORD-A-P1", "delivered"): 1,
        ("ORD-A", "ORD-A-P2", "out_for_delivery"): 1, ("ORD-A", "ORD-A-P2", "delivered"): 1,
        ("ORD-C", "", "order_confirmed"): 1, ("ORD-C", "ORD-C-P1", "shipped"): 1,
        ("ORD-C", "ORD-C-P2", "shipped"): 1, ("ORD-C", "ORD-C-P1", "out_for_delivery"): 1,
        ("ORD-C", "ORD-C-P1", "delivered"): 1,
    })


def test_shipped_notification_carries_carrier_tracking_number_and_link(finished):
    shipped_p1 = next(c for c in finished["delivered"]
                      if c["type"] == "shipped" and c["package_id"] == "ORD-A-P1")
    assert (shipped_p1["carrier"], shipped_p1["tracking_number"]) == ("ups", "1ZA1")
    assert shipped_p1["tracking_url"].endswith("1ZA1")
    delivered = next(c for c in finished["delivered"] if c["type"] == "delivered" and c["order_id"] == "ORD-A")
    assert delivered["location"] == "Delivered, front porch, Reno, NV"  # where it was left


def test_history_in_clickhouse_tells_the_orders_story(finished):
    rows = finished["history"]
    order_a = [(r["previous_status"], r["status"]) for r in rows
               if r["order_id"] == "ORD-A" and r["record_type"] == "transition" and not r["package_id"]]
    assert order_a == [("placed", "partially_shipped"), ("partially_shipped", "shipped"),
                       ("shipped", "partially_delivered"), ("partially_delivered", "delivered")]
    order_b = [r["status"] for r in rows if r["order_id"] == "ORD-B" and r["record_type"] == "transition"]
    assert order_b == ["cancelled"]
    # The scan that came before its shipment was held and then counted, not lost.
    p2_events = [r["status"] for r in rows if r["package_id"] == "ORD-A-P2" and r["record_type"] == "event"]
    assert p2_events.count("info_received") == 1 and "delivered" in p2_events
    # Each carrier event once, however often the webhook resent it.
    p1_scans = [r["status"] for r in rows if r["package_id"] == "ORD-A-P1" and r["source"] == "easypost"]
    assert sorted(p1_scans) == sorted(["info_received", "in_transit", "out_for_delivery", "delivered"])
    assert finished["history_raw_count"] == len(rows)


def test_bad_input_reaches_the_dead_letter_table_with_reason_and_original_bytes(finished):
    letters = {(d["source_topic"], d["reason"]): d for d in finished["dead_letters"]}
    assert set(letters) == {(topics.CARRIER_SCANS_RAW, "malformed_json"),
                            (topics.CARRIER_SCANS_RAW, "unknown_source"),
                            (topics.FC_EVENTS, "missing_field")}
    assert letters[(topics.CARRIER_SCANS_RAW, "unknown_source")]["payload"] == "<Track>not ours</Track>"
    assert letters[(topics.FC_EVENTS, "missing_field")]["message_key"] == "ORD-X"


def test_overview_dashboard_counts_orders_and_packages_by_status(finished):
    orders = {r["status"]: r["orders"] for r in finished["panels"]["Orders by current status"]}
    assert orders == {"delivered": 1, "cancelled": 1, "partially_delivered": 1}
    packages = {r["status"]: r["packages"] for r in finished["panels"]["Packages by current status"]}
    assert packages == {"delivered": 3, "attempt_failed": 1}
    timeline = finished["panels"]["Order timeline (drill down: pick an order)"]
    assert {r["record_type"] for r in timeline} >= {"event", "transition", "notification", "shipment"}
    assert all(r["status"] for r in timeline)


def test_support_looks_up_an_order_on_the_worker(finished):
    status, order = finished["lookups"]["ORD-A"]
    assert status == 200 and order["status"] == "delivered"
    packages = {p["package_id"]: p for p in order["packages"]}
    assert set(packages) == {"ORD-A-P1", "ORD-A-P2"}
    assert [e["status"] for e in packages["ORD-A-P1"]["timeline"]] == [
        "info_received", "in_transit", "out_for_delivery", "delivered"]
    assert packages["ORD-A-P2"]["tracking_url"].endswith("9400A2")
    assert order["promised_delivery_date"] == DAY[2]
    assert finished["lookups"]["ORD-B"][1]["status"] == "cancelled"
    status, error = finished["lookups"]["ORD-NOPE"]
    assert status == 404 and error["error"] == "order not found"


def test_one_x12_interchange_updates_each_of_its_shipments(finished):
    status, order = finished["lookups"]["ORD-C"]
    assert status == 200 and order["status"] == "partially_delivered"
    packages = {p["package_id"]: p["status"] for p in order["packages"]}
    assert packages == {"ORD-C-P1": "delivered", "ORD-C-P2": "attempt_failed"}
