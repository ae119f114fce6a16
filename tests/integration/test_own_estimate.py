"""Our own estimate on the real embedded broker: a lane's estimate moves as its delivered
history arrives (issue 13).

Deliveries on one lane (OnTrac two-day, FC-A -> US-CA) go through the real worker: the order
agent observes each delivery, the lane-model agent learns it and broadcasts a new model version
to every order partition, and an order shipped on that lane is shown the model's date. Slower
deliveries then move the lane's median, and the same package's next scan moves its date, told
to the customer as ``estimate_revised`` from the model.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from datetime import time as dtime

import orjson

from broker import clients
from models import topics
from models.codec import decode_lane_models
from tests.integration.conftest import PARTITIONS, Pipeline
from tests.integration.test_real_traffic import GENERIC, carrier_events, iso, package_shipped, produce_at

LANE = "lane|ontrac|two_day|FC-A|US-CA"


def placed(order_id: str, at: datetime) -> bytes:
    return orjson.dumps({
        "type": "order_placed", "event_id": f"{order_id}-placed", "order_id": order_id, "occurred_at": iso(at),
        "customer_id": f"CUST-{order_id}", "seller_id": "SELLER-1", "fulfillment_center": "FC-A",
        "service_level": "two_day", "promised_delivery_date": (at + timedelta(days=5)).date().isoformat(),
        "ship_by": iso(at + timedelta(hours=12)), "items": [{"sku": "SKU-1", "quantity": 1}],
        "destination": {"country": "US", "region": "CA", "postal_code": "94103"}})


def delivered_history(first: int, count: int, transit_days: int, start: datetime, stamped: bool = False) -> list:
    """Orders shipped days ago on the lane, each delivered ``transit_days`` after it was shipped."""
    messages = []
    for n in range(first, first + count):
        order_id, tracking = f"HIST-{n}", f"OT-HIST-{n}"
        shipped = start + timedelta(hours=n)
        delivered = shipped + timedelta(days=transit_days)
        # Ingest times as it happened (a replay on the records' clock), or now (the wall clock's).
        ingested = [shipped - timedelta(hours=1), shipped, delivered + timedelta(hours=1)] if stamped else [None] * 3
        messages += [
            (topics.FC_EVENTS, order_id.encode(), placed(order_id, shipped - timedelta(hours=1)), [], ingested[0]),
            (topics.FC_EVENTS, order_id.encode(), package_shipped(order_id, tracking, shipped), [], ingested[1]),
            (topics.CARRIER_SCANS_RAW, tracking.encode(), carrier_events(tracking, [
                ("in_transit", shipped + timedelta(hours=2)), ("delivered", delivered)]), GENERIC, ingested[2])]
    return messages


def lane_versions_everywhere(bootstrap: str, deliveries: int, timeout: float = 90) -> int:
    """Wait until every order-events partition holds a model of the lane learned from
    ``deliveries`` deliveries or more; returns the first such version. (Hand-overs make
    versions too: a young lane counts its packages still travelling.)"""
    reader = clients.consumer(bootstrap, f"models-{time.monotonic_ns()}", log_level=0)
    from confluent_kafka import TopicPartition
    reader.assign([TopicPartition(topics.ORDER_EVENTS, p, 0) for p in range(PARTITIONS)])
    reached: set[int] = set()
    versions: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(reached) < PARTITIONS:
            assert time.monotonic() < deadline, f"{deliveries} deliveries reached partitions {sorted(reached)}"
            for message in reader.consume(1000, timeout=1.0):
                if message.error() or message.key() != topics.LANE_MODELS_KEY:
                    continue
                update = decode_lane_models(message.value())
                found = [m.version for m in update.models if m.key == LANE and m.deliveries >= deliveries - 1e-6]
                if found:
                    reached.add(message.partition())
                    versions.update(found)
    finally:
        reader.close()
    return min(versions)


def version(model_key: str) -> int:
    """The version in a lookup's "model" field, "<key>@<version>", once it is the lane's."""
    key, _, number = model_key.rpartition("@")
    return int(number) if key == LANE else -1


def package_view(pipeline: Pipeline, order_id: str, until, what: str) -> dict:
    found: dict = {}

    def ready() -> bool:
        try:
            status, body = pipeline.lookup(order_id)
        except OSError:  # the worker's web server is not up yet
            return False
        if status == 200 and body["packages"] and until(body["packages"][0]):
            found.update(body["packages"][0])
            return True
        return False

    pipeline.wait_for(ready, 60, what)
    return found


def test_a_lanes_estimate_moves_as_delivered_history_arrives(broker: str, pipeline: Pipeline, tmp_path) -> None:
    thresholds = tmp_path / "thresholds.toml"
    thresholds.write_text("lane_model_min_deliveries = 3\n")  # a small lane: three deliveries make a model
    pipeline.env["TRACKLINE_THRESHOLDS"] = str(thresholds)
    pipeline.start("worker")
    now = datetime.now(UTC)
    # Three packages that each took one day.
    produce_at(broker, delivered_history(0, 3, transit_days=1, start=now - timedelta(days=20)))
    learned = lane_versions_everywhere(broker, 3)

    # A new order on the lane, shipped now, no carrier date: shown the model's date, one working
    # day after shipping (every day counts until the carrier's days off are learned).
    produce_at(broker, [(topics.FC_EVENTS, b"NEW", placed("NEW", now - timedelta(minutes=5)), [], None),
                        (topics.FC_EVENTS, b"NEW", package_shipped("NEW", "OT-NEW", now - timedelta(minutes=2)),
                         [], None)])
    first = package_view(pipeline, "NEW", lambda p: p["estimate_source"] == "model", "the model's first date")
    shipped_day = (now - timedelta(minutes=2)).date()
    assert first["estimated_delivery"] == (shipped_day + timedelta(days=1)).isoformat()
    assert version(first["model"]) >= learned and first["estimate_confidence"] == 1.0

    # Five more that took three days: the lane's median is now three days.
    produce_at(broker, delivered_history(3, 5, transit_days=3, start=now - timedelta(days=15)))
    learned = lane_versions_everywhere(broker, 8)
    produce_at(broker, [(topics.CARRIER_SCANS_RAW, b"OT-NEW", carrier_events("OT-NEW", [
        ("in_transit", datetime.now(UTC) - timedelta(minutes=1))]), GENERIC, None)])
    moved = package_view(pipeline, "NEW", lambda p: version(p["model"]) >= learned, "the model's new date")
    assert moved["estimated_delivery"] == (shipped_day + timedelta(days=3)).isoformat()
    assert moved["estimate_source"] == "model" and moved["model_confidence"] == 1.0

    # The customer is told the later date, and where it comes from.
    def revisions() -> list[dict]:
        return [c for c in clients.read_topic(broker, topics.NOTIFICATIONS, PARTITIONS)
                if c["order_id"] == "NEW" and c["type"] == "estimate_revised"]

    pipeline.wait_for(lambda: bool(revisions()), 60, "estimate_revised")
    [told] = revisions()
    assert (told["estimated_delivery"], told["estimate_source"]) == (moved["estimated_delivery"], "model")
    assert told["previous_estimate"] == first["estimated_delivery"]


def test_before_its_first_delivery_a_level_shows_the_carriers_usual_date_not_the_promise(
        broker: str, pipeline: Pipeline) -> None:
    """A deployment's first day: no delivery yet on OnTrac two-day. Five packages in transit got
    a date from the carrier three days after their hand-over; a sixth, which the carrier has not
    dated yet, is shown that usual date, not the promise five days out."""
    pipeline.start("worker")
    now = datetime.now(UTC)
    shipped_at = now - timedelta(hours=3)
    dated = shipped_at.date() + timedelta(days=3)
    messages = []
    for n in range(5):
        order_id, tracking = f"DATED-{n}", f"OT-DATED-{n}"
        body = orjson.loads(carrier_events(tracking, [("in_transit", shipped_at + timedelta(hours=1))]))
        messages += [
            (topics.FC_EVENTS, order_id.encode(), placed(order_id, shipped_at - timedelta(hours=1)), [], None),
            (topics.FC_EVENTS, order_id.encode(), package_shipped(order_id, tracking, shipped_at), [], None),
            (topics.CARRIER_SCANS_RAW, tracking.encode(),
             orjson.dumps(body | {"estimated_delivery": dated.isoformat()}), GENERIC, None)]
    produce_at(broker, messages)
    for n in range(5):  # each dated by its carrier, its own date shown
        package_view(pipeline, f"DATED-{n}", lambda p: p["estimate_source"] == "carrier", "the carrier's date")

    def usual_date_shown(package: dict) -> bool:
        return package["estimate_source"] == "carrier_typical"

    produce_at(broker, [(topics.FC_EVENTS, b"UNDATED", placed("UNDATED", shipped_at - timedelta(hours=1)), [], None),
                        (topics.FC_EVENTS, b"UNDATED", package_shipped("UNDATED", "OT-UNDATED", shipped_at), [], None)])
    # The lane agent's models may reach the order partition after the shipment: a scan
    # without a date asks again.
    deadline = time.monotonic() + 60
    while True:
        status, body = pipeline.lookup("UNDATED")  # the worker is up: the dated packages were looked up
        if status == 200 and body["packages"] and usual_date_shown(body["packages"][0]):
            break
        assert time.monotonic() < deadline, f"no usual date shown: {body}"
        produce_at(broker, [(topics.CARRIER_SCANS_RAW, b"OT-UNDATED", carrier_events(
            "OT-UNDATED", [("in_transit", datetime.now(UTC) - timedelta(minutes=1))]), GENERIC, None)])
        time.sleep(2)
    package = body["packages"][0]
    assert package["estimated_delivery"] == dated.isoformat()
    assert body["promised_delivery_date"] == (shipped_at - timedelta(hours=1) + timedelta(days=5)).date().isoformat()


def test_a_carrier_whose_dates_came_a_day_early_is_shown_a_day_later_before_any_model(
        broker: str, pipeline: Pipeline) -> None:
    """Five OnTrac two-day packages delivered last week, each a day after the date the carrier
    gave two days ahead at each of its five scans (25 scans measured at that lead), too few
    deliveries for a model. A new package the carrier dates two days out is shown the day after."""
    pipeline.start("worker")
    now = datetime.now(UTC)
    start = datetime.combine((now - timedelta(days=5)).date(), dtime(10), UTC)  # no scan near midnight
    carrier_date = start.date() + timedelta(days=2)
    messages = []
    for n in range(5):
        order_id, tracking = f"EARLY-{n}", f"OT-EARLY-{n}"
        shipped = start + timedelta(minutes=n)
        messages += [(topics.FC_EVENTS, order_id.encode(), placed(order_id, shipped - timedelta(hours=1)), [], None),
                     (topics.FC_EVENTS, order_id.encode(), package_shipped(order_id, tracking, shipped), [], None)]
        for k in range(5):
            body = orjson.loads(carrier_events(tracking, [("in_transit", shipped + timedelta(hours=1, minutes=k))]))
            messages.append((topics.CARRIER_SCANS_RAW, tracking.encode(),
                             orjson.dumps(body | {"estimated_delivery": carrier_date.isoformat()}), GENERIC, None))
        messages.append((topics.CARRIER_SCANS_RAW, tracking.encode(), carrier_events(
            tracking, [("delivered", start + timedelta(days=3, hours=2, minutes=n))]), GENERIC, None))
    produce_at(broker, messages)
    for n in range(5):
        package_view(pipeline, f"EARLY-{n}", lambda p: p["status"] == "delivered", "the history delivered")

    shipped_at = now - timedelta(hours=3)
    produce_at(broker, [(topics.FC_EVENTS, b"FRESH", placed("FRESH", shipped_at - timedelta(hours=1)), [], None),
                        (topics.FC_EVENTS, b"FRESH", package_shipped("FRESH", "OT-FRESH", shipped_at), [], None)])
    # The lane agent's models may reach the order partition after the first scan: a later scan
    # with the same date asks again.
    deadline = time.monotonic() + 60
    while True:
        scanned = datetime.now(UTC) - timedelta(minutes=1)
        given = scanned.date() + timedelta(days=2)
        body = orjson.loads(carrier_events("OT-FRESH", [("in_transit", scanned)]))
        produce_at(broker, [(topics.CARRIER_SCANS_RAW, b"OT-FRESH",
                             orjson.dumps(body | {"estimated_delivery": given.isoformat()}), GENERIC, None)])
        time.sleep(2)
        status, found = pipeline.lookup("FRESH")
        package = found["packages"][0] if status == 200 and found["packages"] else {}
        if package.get("estimate_source") == "carrier_corrected":
            break
        assert time.monotonic() < deadline, f"the carrier's date not moved: {found}"
    assert package["estimated_delivery"] == (given + timedelta(days=1)).isoformat()
    assert package["carrier_current_estimate"] == given.isoformat()  # what the carrier said is there to read


def test_a_date_told_that_passes_without_a_scan_moves_on_at_midnight_in_event_time(
        broker: str, pipeline: Pipeline, tmp_path) -> None:
    """A replay of history (the records' clock): OnTrac two-day from FC-A to California took one
    day for three packages and two days for a fourth. A package shipped on a Tuesday is told
    Wednesday; no scan comes on Wednesday. Once the records' time passes Wednesday's midnight
    (the customer's, UTC here), the worker's tick tells the customer Thursday, before the
    package's silence is stale (36 hours after Tuesday's 14:00 scan)."""
    thresholds = tmp_path / "thresholds.toml"
    # Three deliveries make a model; the stale rule keeps its configured 36 hours (not learned
    # from this small history), so its tick comes after Wednesday's midnight, not before.
    thresholds.write_text("lane_model_min_deliveries = 3\nstale_learned_factor = 0\n")
    pipeline.env.update(TRACKLINE_THRESHOLDS=str(thresholds), TRACKLINE_WATERMARK_CLOCK="records",
                        TRACKLINE_TICK_INTERVAL="0.5")
    pipeline.start("worker")
    today = datetime.now(UTC).date()
    tuesday = today - timedelta(days=14 + (today.weekday() - 1) % 7)
    shipped = datetime.combine(tuesday, dtime(12), UTC)
    week_before = shipped - timedelta(days=7)
    produce_at(broker, delivered_history(0, 3, transit_days=1, start=week_before, stamped=True)
               + delivered_history(3, 1, transit_days=2, start=week_before, stamped=True))
    lane_versions_everywhere(broker, 4)

    placed_at, scanned = shipped - timedelta(hours=1), shipped + timedelta(hours=2)
    produce_at(broker, [
        (topics.FC_EVENTS, b"QUIET", placed("QUIET", placed_at), [], placed_at),
        (topics.FC_EVENTS, b"QUIET", package_shipped("QUIET", "OT-QUIET", shipped), [], shipped),
        (topics.CARRIER_SCANS_RAW, b"OT-QUIET", carrier_events("OT-QUIET", [("in_transit", scanned)]), GENERIC,
         scanned)])
    first = package_view(pipeline, "QUIET", lambda p: p["estimate_source"] == "model" and p["timeline"],
                         "the model's first date")
    wednesday = tuesday + timedelta(days=1)
    assert first["estimated_delivery"] == wednesday.isoformat()

    def revisions() -> list[dict]:
        return [c for c in clients.read_topic(broker, topics.NOTIFICATIONS, PARTITIONS, quiet_seconds=1)
                if c["order_id"] == "QUIET" and c["type"] == "estimate_revised"]

    assert revisions() == []  # the records' clock stands at Tuesday 14:00
    # Another order's record moves the records' clock one minute past Wednesday's midnight.
    midnight = datetime.combine(wednesday + timedelta(days=1), dtime(0), UTC)
    produce_at(broker, [(topics.FC_EVENTS, b"CLOCK", placed("CLOCK", midnight), [], midnight + timedelta(minutes=1))])
    pipeline.wait_for(lambda: bool(revisions()), 60, "estimate_revised once Wednesday is over")
    [told] = revisions()
    assert (told["estimated_delivery"], told["previous_estimate"]) == \
        ((wednesday + timedelta(days=1)).isoformat(), wednesday.isoformat())
    assert midnight <= datetime.fromisoformat(told["caused_by_ingested_at"]) <= midnight + timedelta(minutes=1)

