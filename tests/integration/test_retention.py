"""Retention on a real broker: a finished order's state goes, a late event for it is refused,
and its tracking entry follows once the removal's marker ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from models import topics
from tests.integration.conftest import produce

pytestmark = pytest.mark.integration
ORDER, NUMBER = "ORD-RETAIN-1", "1ZRETAIN0001"


def dead_letter_reasons(bootstrap: str) -> list[tuple[str, bytes]]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-read-dlq"})
    consumer.assign([TopicPartition(topics.DLQ, 0, 0)])
    found = []
    for message in consumer.consume(1000, timeout=2.0):
        if not message.error():
            headers = dict(message.headers() or [])
            found.append((headers.get(topics.DLQ_REASON_HEADER, b"").decode(), message.value()))
    consumer.close()
    return found


def status(pipeline) -> int:
    """The order lookup's status; 0 while the worker's web server is not up yet."""
    import urllib.error

    try:
        return pipeline.lookup(ORDER)[0]
    except urllib.error.URLError:
        return 0


def keys_in_store(data_dir: Path, table: str) -> set[bytes]:
    from rocksdict import AccessType, Options, Rdict

    keys: set[bytes] = set()
    for path in (data_dir / "worker" / "worker" / "v1" / "tables").glob(f"{table}-*.db"):
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        keys |= set(db.keys())
        db.close()
    return keys


def test_a_finished_order_is_removed_and_a_late_scan_for_it_is_refused(pipeline, tmp_path) -> None:
    rules = tmp_path / "retention.toml"
    # Seconds instead of days: feedback 2 s after delivery, removal 17 s after it, marker 17 s.
    rules.write_text("feedback_after_hours = 0.0006\nkeep_after_final_days = 0.0002\n"
                     "return_window_days = 0\nexpired_marker_days = 0.0002\n")
    pipeline.env.update(TRACKLINE_TICK_INTERVAL="0.5", TRACKLINE_THRESHOLDS=str(rules))
    pipeline.start("worker", "notifier")
    now = datetime.now(UTC)
    placed = {"type": "order_placed", "event_id": f"{ORDER}-placed", "order_id": ORDER,
              "occurred_at": (now - timedelta(hours=2)).isoformat(), "customer_id": "CUST-R", "seller_id": "S",
              "fulfillment_center": "FC-A", "service_level": "standard",
              "promised_delivery_date": (now + timedelta(days=3)).date().isoformat(),
              "ship_by": (now + timedelta(days=1)).isoformat(), "items": [{"sku": "SKU-1", "quantity": 1}]}
    shipped = {"type": "package_shipped", "event_id": f"{ORDER}-shipped", "order_id": ORDER,
               "occurred_at": (now - timedelta(hours=1)).isoformat(), "package_id": f"{ORDER}-P1",
               "carrier": "UPS", "tracking_number": NUMBER}
    produce(pipeline.bootstrap, [(topics.FC_EVENTS, ORDER.encode(), orjson.dumps(placed), []),
                                 (topics.FC_EVENTS, ORDER.encode(), orjson.dumps(shipped), [])])
    pipeline.wait_for(lambda: status(pipeline) == 200, 60, "the order")
    delivered = {"carrier": "UPS", "tracking_number": NUMBER,  # retention counts from this scan's time
                 "events": [{"status": "delivered", "occurred_at": datetime.now(UTC).isoformat()}]}
    produce(pipeline.bootstrap, [(topics.CARRIER_SCANS_RAW, NUMBER.encode(), orjson.dumps(delivered),
                                  [(topics.SOURCE_HEADER, b"generic")])])
    pipeline.wait_for(lambda: any(c["type"] == "feedback_request" for c in pipeline.delivered()), 60,
                      "the feedback request")
    found = pipeline.lookup(ORDER)
    assert found[1].get("status") == "delivered", found

    pipeline.wait_for(lambda: status(pipeline) == 404, 60, "the order's removal")
    late = {"carrier": "UPS", "tracking_number": NUMBER,
            "events": [{"status": "in_transit", "occurred_at": (now - timedelta(minutes=30)).isoformat(),
                        "location": "Memphis, TN"}]}
    produce(pipeline.bootstrap, [(topics.CARRIER_SCANS_RAW, NUMBER.encode(), orjson.dumps(late),
                                  [(topics.SOURCE_HEADER, b"generic")])])
    pipeline.wait_for(lambda: any(reason == "order_expired" for reason, _ in dead_letter_reasons(pipeline.bootstrap)),
                      60, "the late scan's dead letter")
    (refused,) = [value for reason, value in dead_letter_reasons(pipeline.bootstrap) if reason == "order_expired"]
    assert orjson.loads(refused)["order_id"] == ORDER
    assert pipeline.lookup(ORDER)[0] == 404, "the late scan started the order again"

    # The marker ends 17 s after the removal: then the order's key and its tracking entry go.
    def gone() -> bool:
        return ORDER.encode() not in keys_in_store(pipeline.data_dir, "orders") and \
            NUMBER.encode() not in keys_in_store(pipeline.data_dir, "tracking")

    assert ORDER.encode() in keys_in_store(pipeline.data_dir, "orders")  # the marker, for now
    pipeline.wait_for(gone, 90, "the marker and the tracking entry to go")
    commands = [c for c in pipeline.delivered() if c["order_id"] == ORDER]
    assert len(commands) == len({c["command_id"] for c in commands})
