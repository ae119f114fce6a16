"""Real traffic on the real embedded broker and chDB: poison in a large batch, failed sends,
a backlog read after an outage, and fulfillment events that arrive together.

Payloads are written from the formats' public documentation (tests/payloads), with hostile
variants; times are set so that what the customer must (not) hear follows from the domain.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from broker import clients
from models import topics
from tests.integration.conftest import PARTITIONS, Pipeline, committed_to_the_end, settle

PAYLOADS = Path(__file__).parents[1] / "payloads"
DEMO_THRESHOLDS = Path(__file__).parents[2] / "config" / "detection-demo.toml"
GENERIC = [(topics.SOURCE_HEADER, b"generic")]


def produce_at(bootstrap: str, messages: list[tuple[str, bytes | None, bytes, list, datetime | None]]) -> None:
    """Produce, with the record timestamp (trackline's ingest time) set where given."""
    producer = clients.producer(bootstrap)
    for topic, key, value, headers, ingested_at in messages:
        extra = {"timestamp": int(ingested_at.timestamp() * 1000)} if ingested_at else {}
        producer.produce(topic, key=key, value=value, headers=headers, **extra)
        producer.poll(0)
    assert producer.flush(60) == 0


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def order_placed(order_id: str, placed: datetime, ship_by: datetime, promised: datetime,
                 zone: str | None = None) -> bytes:
    return orjson.dumps(({"delivery_time_zone": zone} if zone else {}) | {
        "type": "order_placed", "event_id": f"{order_id}-placed", "order_id": order_id, "occurred_at": iso(placed),
        "customer_id": f"CUST-{order_id}", "seller_id": "SELLER-1", "fulfillment_center": "FC-A",
        "service_level": "two_day", "promised_delivery_date": promised.date().isoformat(),
        "ship_by": iso(ship_by), "items": [{"sku": "SKU-1", "quantity": 1}]})


def package_shipped(order_id: str, tracking: str, at: datetime, carrier: str = "OnTrac") -> bytes:
    return orjson.dumps({
        "type": "package_shipped", "event_id": f"{order_id}-shipped", "order_id": order_id,
        "occurred_at": iso(at), "package_id": f"{order_id}-P1", "carrier": carrier, "tracking_number": tracking})


def carrier_events(tracking: str, events: list[tuple[str, datetime]], carrier: str = "OnTrac") -> bytes:
    return orjson.dumps({"carrier": carrier, "tracking_number": tracking, "events": [
        {"status": status, "code": status.upper(), "message": status, "occurred_at": iso(at)}
        for status, at in events]})


def afternoon_zone(now: datetime) -> str:
    """A fixed-offset zone in which ``now`` is about 15:00 (Etc/GMT-N is UTC+N)."""
    offset = max(-12, min(14, 15 - now.hour))
    return f"Etc/GMT{-offset:+d}" if offset else "UTC"


def worker_crashes(run: Pipeline) -> list[str]:
    return [line for line in (run.logs / "worker.log").read_text().splitlines() if "Crashed" in line]


def test_poison_in_a_large_batch_costs_only_itself(broker: str, pipeline: Pipeline) -> None:
    orders = 200
    now = datetime.now(UTC)
    setup = []
    for n in range(orders):
        order_id = f"ORD-{n}"
        setup.append((topics.FC_EVENTS, order_id.encode(),
                      order_placed(order_id, now, now + timedelta(days=1), now + timedelta(days=3)), [], None))
        setup.append((topics.FC_EVENTS, order_id.encode(), package_shipped(order_id, f"TRK{n}", now), [], None))
    easypost = orjson.loads((PAYLOADS / "easypost_tracker_updated.json").read_bytes())
    aftership = orjson.loads((PAYLOADS / "aftership_tracking_update.json").read_bytes())
    x12 = (PAYLOADS / "x12_214_three_shipments_one_broken.edi").read_bytes()
    poison = [  # (message, the reason it must be dead-lettered with)
        ((topics.CARRIER_SCANS_RAW, b"P1", orjson.dumps({**easypost, "description": {"x": 1}}),
          [(topics.SOURCE_HEADER, b"easypost")]), "invalid_field"),
        ((topics.CARRIER_SCANS_RAW, b"P2", orjson.dumps({**aftership, "event": ["tracking_update"]}),
          [(topics.SOURCE_HEADER, b"aftership")]), "invalid_field"),
        ((topics.CARRIER_SCANS_RAW, b"P3", b'{"carrier": "OnTrac", "tracking_n', GENERIC), "malformed_json"),
        ((topics.CARRIER_SCANS_RAW, b"P4", b"{}", []), "missing_source"),
        # Forged canonical scans on the raw topic: only the router writes those, on its own topic.
        ((topics.CARRIER_SCANS_RAW, b"P5", b"[]", [(topics.SOURCE_HEADER, b"trackline-canonical")]),
         "unknown_source"),
        ((topics.FC_EVENTS, b"ORD-N", orjson.dumps(
            {**orjson.loads(order_placed("ORD-N", now, now, now)), "occurred_at": "2026-11-02T08:00:00"}), []),
         "invalid_field"),  # a time without an offset names no instant
        ((topics.CARRIER_SCANS_RAW, b"ISA-3", x12, [(topics.SOURCE_HEADER, b"x12-214")]), "missing_field"),
    ]
    scans = []
    per_order = 50  # the lookup shows a package's last 64 scans
    for i in range(per_order):
        for n in range(orders):
            at = now - timedelta(minutes=per_order - i)
            scans.append((topics.CARRIER_SCANS_RAW, f"TRK{n}".encode(),
                          carrier_events(f"TRK{n}", [("in_transit", at)]), GENERIC, None))
    middle = len(scans) // 2
    scans[middle:middle] = [(*message, None) for message, _ in poison]
    pipeline.env.update(TRACKLINE_THRESHOLDS=str(DEMO_THRESHOLDS))
    pipeline.start("worker")
    produce_at(broker, setup)
    produce_at(broker, scans)

    def scans_on_order(n: int) -> int:
        try:
            status, view = pipeline.lookup(f"ORD-{n}")
        except (OSError, ValueError):  # the worker is not up, or owns no partitions yet
            return 0
        return len(view["packages"][0]["timeline"]) if status == 200 and view["packages"] else 0

    pending = set(range(orders))

    def every_good_scan_reached_its_order() -> bool:
        pending.difference_update({n for n in list(pending) if scans_on_order(n) == per_order})
        return not pending

    pipeline.wait_for(every_good_scan_reached_its_order, 240, "every good scan on its order's timeline")
    letters = dead_letters(broker, len(poison))
    for (_, key, _, _), reason in poison:
        assert letters[key][0] == reason, key
    # The broken shipment of the interchange went alone; its two good shipments were read.
    assert letters[b"ISA-3"][1].startswith(b"ST*214") and b"ISA" not in letters[b"ISA-3"][1]
    assert worker_crashes(pipeline) == []


def dead_letters(bootstrap: str, expected: int) -> dict[bytes, tuple[str, bytes]]:
    """(reason, original bytes) of each dead letter on trackline.dlq, by message key."""
    consumer = clients.consumer(bootstrap, "test-dlq-reader")
    consumer.subscribe([topics.DLQ])
    found: dict[bytes, tuple[str, bytes]] = {}
    deadline = time.monotonic() + 60
    try:
        while len(found) < expected and time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=1):
                if message.error() is None:
                    headers = dict(message.headers() or [])
                    found[message.key()] = (headers[topics.DLQ_REASON_HEADER].decode(), message.value())
    finally:
        consumer.close()
    return found


def test_a_failed_send_stores_nothing_and_loses_nothing(broker: str, pipeline: Pipeline) -> None:
    now = datetime.now(UTC)
    # The first three confirmations of record batches fail, as a broker error would.
    pipeline.env.update(TRACKLINE_FAILPOINTS="produce_error:3")
    pipeline.start("worker", "notifier")
    produce_at(broker, [
        (topics.FC_EVENTS, f"ORD-{n}".encode(),
         order_placed(f"ORD-{n}", now, now + timedelta(days=1), now + timedelta(days=3)), [], None)
        for n in range(20)])
    pipeline.wait_for(lambda: len({c["command_id"] for c in pipeline.delivered()}) >= 40, 90,
                      "a confirmation and an estimate for every order")
    settle(pipeline, "after-retries")  # a command sent twice by a retry would be out by now
    got = {(c["order_id"], c["type"]) for c in pipeline.delivered()}
    assert got == {(f"ORD-{n}", kind) for n in range(20) for kind in ("order_confirmed", "estimate_set")}
    assert "send failed (attempt 1)" in (pipeline.logs / "worker.log").read_text()
    assert worker_crashes(pipeline) == []


def test_a_backlog_read_after_an_outage_tells_no_false_delay(broker: str, pipeline: Pipeline) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    day = timedelta(days=1)
    start = now - 3 * day
    backlog = []

    def fc(order_id: str, value: bytes, at: datetime) -> None:
        backlog.append((topics.FC_EVENTS, order_id.encode(), value, [], at + timedelta(minutes=1)))

    def carrier(tracking: str, status: str, at: datetime) -> None:
        backlog.append((topics.CARRIER_SCANS_RAW, tracking.encode(),
                        carrier_events(tracking, [(status, at)]), GENERIC, at + timedelta(minutes=5)))

    # ORD-OK met every deadline: shipped before ship-by, delivered before the promise.
    fc("ORD-OK", order_placed("ORD-OK", start, start + timedelta(hours=12), start + 2 * day), start)
    fc("ORD-OK", package_shipped("ORD-OK", "TOK", start + timedelta(hours=4)), start + timedelta(hours=4))
    for hours, status in [(6, "in_transit"), (30, "in_transit"), (40, "out_for_delivery"), (44, "delivered")]:
        carrier("TOK", status, start + timedelta(hours=hours))
    # ORD-LATE was never shipped: it missed its ship-by (its promise is still two days ahead).
    fc("ORD-LATE", order_placed("ORD-LATE", start, start + timedelta(hours=12), now + 2 * day), start)
    # ORD-BATCH: its fulfillment center sends placed and shipped (4 h before ship-by) together, now.
    backlog.append((topics.FC_EVENTS, b"ORD-BATCH", order_placed(
        "ORD-BATCH", now - timedelta(hours=10), now - timedelta(hours=2), now + 2 * day), [], now))
    backlog.append((topics.FC_EVENTS, b"ORD-BATCH",
                    package_shipped("ORD-BATCH", "TBATCH", now - timedelta(hours=6)), [], now))
    produce_at(broker, backlog)  # all of it waits on the broker: the worker is down
    # Production thresholds (two-day service: pickup scan within 24 h, stale after 36 h), so
    # what each order owes its customer follows from the times above; ticks every 0.5 s. The
    # customer hears 3 s after trackline learned of a missed deadline (not 30 minutes).
    rules = pipeline.data_dir / "thresholds.toml"
    rules.write_text("feed_allowance_start_minutes = 0.05\nfeed_allowance_floor_minutes = 0.05\n")
    pipeline.env.update(TRACKLINE_TICK_INTERVAL="0.5", TRACKLINE_THRESHOLDS=str(rules))
    pipeline.start("worker", "notifier", "sink")

    def delayed(order_id: str) -> list[dict]:
        return [c for c in pipeline.delivered() if c["order_id"] == order_id and c["type"] == "delayed"]

    pipeline.wait_for(lambda: len(delayed("ORD-LATE")) >= 1, 90, "the late order's delay notice")
    pipeline.wait_for(lambda: any(c["order_id"] == "ORD-OK" and c["type"] == "delivered"
                                  for c in pipeline.delivered()), 60, "the on-time order's delivery")
    # Every order of the backlog was judged in the tick that told ORD-LATE; anything those
    # ticks sent is ahead of the sentinels on every path.
    settle(pipeline, "after-backlog")
    assert delayed("ORD-OK") == []
    assert delayed("ORD-BATCH") == []
    late = delayed("ORD-LATE")
    assert len(late) == 1  # once, not once per tick
    assert late[0]["reason"] == "Your order has not left the warehouse yet."
    pipeline.stop("sink")  # chDB: one process at a time on its files
    alerts = pipeline.query("SELECT order_id, status, previous_status FROM history FINAL WHERE record_type = 'alert'")
    assert ("ORD-LATE", "warehouse_delay", "open") in {(a["order_id"], a["status"], a["previous_status"])
                                                       for a in alerts}
    assert [a for a in alerts if a["order_id"] in ("ORD-OK", "ORD-BATCH")] == []


def x12_out_for_delivery(scac: str, pro: str, at: datetime) -> bytes:
    """One shipment's X12 214 (4010): out for delivery, in Eastern time, as an LTL carrier sends it."""
    local = at.astimezone(ZoneInfo("America/New_York"))
    body = [f"GS*QM*{scac}*TRACKLINE*{local:%Y%m%d}*{local:%H%M}*7*X*004010", "ST*214*0001",
            f"B10*{pro}*SHP-1*{scac}", "LX*1", f"AT7*X6*NS***{local:%Y%m%d}*{local:%H%M}*ET", "MS1*NEWARK*NJ*US",
            "SE*6*0001", "GE*1*7", "IEA*1*000000007"]
    isa = (f"ISA*00*          *00*          *02*{scac:<15}*ZZ*{'TRACKLINE':<15}*{local:%y%m%d}*{local:%H%M}"
           f"*U*00401*000000007*0*P*>")
    assert len(isa) == 105
    return ("~".join([isa, *body]) + "~").encode()


def test_a_carrier_named_two_ways_finds_its_order_and_a_stranger_is_reported(broker: str, pipeline: Pipeline,
                                                                             tmp_path: Path) -> None:
    now = datetime.now(UTC)
    rules = tmp_path / "thresholds.toml"
    rules.write_text("unmatched_scan_hours = 0.0014\n")  # 5 s: held scans give up quickly here
    pipeline.env.update(TRACKLINE_THRESHOLDS=str(rules), TRACKLINE_TICK_INTERVAL="0.5")
    pipeline.start("worker", "notifier")
    produce_at(broker, [
        (topics.FC_EVENTS, b"ORD-U", order_placed("ORD-U", now, now + timedelta(days=1), now + timedelta(days=3)),
         [], None),
        # The fulfillment center calls the carrier "UPS"; its X12 feed names itself by SCAC, "UPSN".
        (topics.FC_EVENTS, b"ORD-U", package_shipped("ORD-U", "1ZUPS0001", now, carrier="UPS"), [], None),
        (topics.CARRIER_SCANS_RAW, b"1ZUPS0001", x12_out_for_delivery("UPSN", "1ZUPS0001", now),
         [(topics.SOURCE_HEADER, b"x12-214")], None),
        # Nobody announced this tracking number.
        (topics.CARRIER_SCANS_RAW, b"STRANGER1", carrier_events("STRANGER1", [("in_transit", now)], "Acme Post"),
         GENERIC, None),
    ])
    pipeline.wait_for(lambda: any(c["order_id"] == "ORD-U" and c["type"] == "out_for_delivery"
                                  for c in pipeline.delivered()), 60, "out for delivery from the UPSN feed")
    found = alerts(broker, lambda a: a["alert_kind"] == "unmatched_scans", 60)
    assert [(a["carrier"], a["state"]) for a in found] == [("acmepost", "open")]
    assert "STRANGER1" in found[0]["detail"]


def alerts(bootstrap: str, wanted, timeout: float) -> list[dict]:
    consumer = clients.consumer(bootstrap, f"test-alerts-{time.monotonic()}")
    consumer.subscribe([topics.ALERTS])
    found: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while not found and time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=1):
                if message.error() is None and wanted(alert := orjson.loads(message.value())):
                    found.append(alert)
    finally:
        consumer.close()
    return found


def test_a_feed_that_reports_late_tells_no_customer_of_a_deadline_it_met(broker: str, pipeline: Pipeline,
                                                                         tmp_path: Path) -> None:
    """A carrier whose scans arrive 6 s after they happened, against an out-for-delivery
    deadline of 10 s (seconds stand in for hours): the delivery that met the deadline arrives
    after it passed, inside the allowance, and the customer hears nothing. A punctual
    carrier's package that really is overdue still gets its notice."""
    rules = tmp_path / "thresholds.toml"
    rules.write_text("out_for_delivery_max_hours = 0.002778\n"  # 10 s on the route
                     "feed_allowance_start_minutes = 0.0167\nfeed_allowance_floor_minutes = 0.0167\n")
    pipeline.env.update(TRACKLINE_THRESHOLDS=str(rules), TRACKLINE_TICK_INTERVAL="0.5")
    pipeline.start("worker", "notifier")
    now = datetime.now(UTC)
    produce_at(broker, [
        (topics.FC_EVENTS, key.encode(), value, [], None)
        for order_id, carrier in (("ORD-SLOW", "SlowPost"), ("ORD-LATE", "QuickPost"))
        for key, value in [(order_id, order_placed(order_id, now, now + timedelta(days=1), now + timedelta(days=3))),
                           (order_id, package_shipped(order_id, f"T-{order_id}", now, carrier))]])
    pipeline.wait_for(lambda: len({c["order_id"] for c in pipeline.delivered() if c["type"] == "shipped"}) == 2,
                      60, "both packages shipped")
    lag = timedelta(seconds=6)
    t0 = datetime.now(UTC)
    produce_at(broker, [
        (topics.CARRIER_SCANS_RAW, b"T-ORD-SLOW", carrier_events("T-ORD-SLOW", [("out_for_delivery", t0 - lag)],
                                                                 "SlowPost"), GENERIC, None),
        (topics.CARRIER_SCANS_RAW, b"T-ORD-LATE", carrier_events("T-ORD-LATE", [("out_for_delivery", t0)],
                                                                 "QuickPost"), GENERIC, None)])
    time.sleep(max(0.0, (t0 + timedelta(seconds=8) - datetime.now(UTC)).total_seconds()))
    # Delivered 2 s after going out (its deadline was 4 s after t0), reported 6 s late.
    produce_at(broker, [(topics.CARRIER_SCANS_RAW, b"T-ORD-SLOW", carrier_events(
        "T-ORD-SLOW", [("delivered", t0 + timedelta(seconds=2))], "SlowPost"), GENERIC, None)])

    def delayed(order_id: str) -> list[dict]:
        return [c for c in pipeline.delivered() if c["order_id"] == order_id and c["type"] == "delayed"]

    pipeline.wait_for(lambda: delayed("ORD-LATE"), 60, "the overdue package's notice")
    pipeline.wait_for(lambda: any(c["order_id"] == "ORD-SLOW" and c["type"] == "delivered"
                                  for c in pipeline.delivered()), 30, "the late feed's delivery")
    settle(pipeline, "after-late-feed")
    assert delayed("ORD-SLOW") == []
    found = alerts(broker, lambda a: a["order_id"] == "ORD-SLOW" and a["state"] == "closed", 30)
    assert [a["alert_kind"] for a in found] == ["out_for_delivery_overdue"]  # ops saw it open, then close


def test_a_scan_held_for_its_order_survives_a_worker_crash(broker: str, pipeline: Pipeline) -> None:
    """The carrier scans a label before the warehouse announces it, once (no resend): the
    router holds it; the worker is killed; the announcement comes after the restart, and the
    held scan reaches the customer."""
    now = datetime.now(UTC)
    pipeline.start("worker", "notifier")
    produce_at(broker, [
        (topics.FC_EVENTS, b"ORD-H", order_placed("ORD-H", now, now + timedelta(days=1), now + timedelta(days=3)),
         [], None),
        (topics.CARRIER_SCANS_RAW, b"THELD1", carrier_events("THELD1", [("out_for_delivery", now)]), GENERIC, None),
        # A sentinel after the held scan, on an announced order: once its update is out, the
        # router has read (and stored) the held scan before it.
        (topics.CARRIER_SCANS_RAW, b"THELD1", b"{}", GENERIC, None),
    ])
    pipeline.wait_for(lambda: any(c["order_id"] == "ORD-H" and c["type"] == "order_confirmed"
                                  for c in pipeline.delivered()), 60, "the order")
    letters = dead_letters(broker, 1)  # the sentinel: read after the held scan, in its partition
    assert letters[b"THELD1"][0] == "missing_field"
    # The router committed the held scan's offset: only its stored entry can bring it back.
    committed_to_the_end(pipeline, "trackline", [(topics.CARRIER_SCANS_RAW, p) for p in range(PARTITIONS)], 60,
                         "the router to commit the held scan")
    pipeline.kill("worker")
    pipeline.start("worker")
    produce_at(broker, [(topics.FC_EVENTS, b"ORD-H", package_shipped("ORD-H", "THELD1", now), [], None)])
    pipeline.wait_for(lambda: any(c["order_id"] == "ORD-H" and c["type"] == "out_for_delivery"
                                  for c in pipeline.delivered()), 90, "the held scan's update after the restart")


def test_webhooks_that_resend_the_whole_history_tell_each_scan_once(broker: str, pipeline: Pipeline) -> None:
    """EasyPost's documented tracker.updated, sent as EasyPost does: each webhook repeats every
    entry so far. The router leaves out what it already routed; every scan still reaches the
    customer once, and a broken entry after known ones is refused with its index in the
    carrier's own payload."""
    now = datetime.now(UTC)
    document = orjson.loads((PAYLOADS / "easypost_tracker_updated.json").read_bytes())
    number, carrier = "9400110898825022579493", "USPS"
    steps = [("pre_transit", 4), ("in_transit", 3), ("out_for_delivery", 2), ("delivered", 1)]
    details = [{**document["result"]["tracking_details"][0], "status": status, "message": status,
                "datetime": iso(now - timedelta(hours=hours))} for status, hours in steps]

    def webhook(entries: list) -> tuple[str, bytes, bytes, list, None]:
        body = {**document, "result": {**document["result"], "tracking_code": number, "carrier": carrier,
                                       "tracking_details": entries}}
        headers = [(topics.SOURCE_HEADER, b"easypost")]
        return topics.CARRIER_SCANS_RAW, number.encode(), orjson.dumps(body), headers, None

    pipeline.start("worker", "notifier")
    produce_at(broker, [
        # A customer whose clock reads mid-afternoon now: the journey's hours stay on one local
        # date whenever the test runs (after midnight UTC an out-for-delivery scan of hours ago
        # would be yesterday's, rightly not announced as news).
        (topics.FC_EVENTS, b"ORD-W", order_placed("ORD-W", now - timedelta(hours=6), now + timedelta(days=1),
                                                  now + timedelta(days=3), zone=afternoon_zone(now)), [], None),
        (topics.FC_EVENTS, b"ORD-W", package_shipped("ORD-W", number, now - timedelta(hours=5), carrier), [], None)])
    pipeline.wait_for(lambda: any(c["order_id"] == "ORD-W" and c["type"] == "shipped" for c in pipeline.delivered()),
                      60, "the shipment")
    for step in range(2, len(details) + 1):  # one webhook at a time: the router has routed the earlier ones
        produce_at(broker, [webhook(details[:step])])
        wanted = steps[step - 1][0]
        if wanted in ("out_for_delivery", "delivered"):
            pipeline.wait_for(lambda w=wanted: any(c["order_id"] == "ORD-W" and c["type"] == w
                                                   for c in pipeline.delivered()), 60, wanted)
    produce_at(broker, [webhook([*details, {**details[-1], "status": 42}])])
    letters = dead_letters(broker, 1)
    assert letters[number.encode()][0] == "invalid_field"
    settle(pipeline, "history")
    told = [c["type"] for c in pipeline.delivered() if c["order_id"] == "ORD-W"]
    assert told.count("out_for_delivery") == 1 and told.count("delivered") == 1
    assert worker_crashes(pipeline) == []


def test_a_webhook_that_changes_only_the_estimate_reaches_the_customer(broker: str, pipeline: Pipeline) -> None:
    """EasyPost sends tracker.updated when ``est_delivery_date`` changes, with no new tracking
    detail: every entry is one the router already routed. The new date still reaches the
    customer once, and the same webhook resent tells nothing more."""
    now = datetime.now(UTC)
    promised = now + timedelta(days=3)
    document = orjson.loads((PAYLOADS / "easypost_tracker_updated.json").read_bytes())
    number, carrier = "9400110898825022579494", "USPS"
    details = [{**document["result"]["tracking_details"][0], "status": status, "message": status,
                "datetime": iso(now - timedelta(hours=hours))} for status, hours in [("pre_transit", 4),
                                                                                      ("in_transit", 3)]]

    def webhook(estimate: datetime) -> tuple[str, bytes, bytes, list, None]:
        body = {**document, "result": {**document["result"], "tracking_code": number, "carrier": carrier,
                                       "tracking_details": details, "est_delivery_date": iso(estimate)}}
        headers = [(topics.SOURCE_HEADER, b"easypost")]
        return topics.CARRIER_SCANS_RAW, number.encode(), orjson.dumps(body), headers, None

    def revisions() -> list[str]:
        return [c["estimated_delivery"] for c in pipeline.delivered()
                if c["order_id"] == "ORD-E" and c["type"] == "estimate_revised"]

    pipeline.start("worker", "notifier")
    produce_at(broker, [
        (topics.FC_EVENTS, b"ORD-E", order_placed("ORD-E", now - timedelta(hours=6), now + timedelta(days=1),
                                                  promised), [], None),
        (topics.FC_EVENTS, b"ORD-E", package_shipped("ORD-E", number, now - timedelta(hours=5), carrier), [], None)])
    pipeline.wait_for(lambda: any(c["order_id"] == "ORD-E" and c["type"] == "shipped" for c in pipeline.delivered()),
                      60, "the shipment")
    produce_at(broker, [webhook(promised)])  # the carrier agrees with the promise: nothing to tell
    settle(pipeline, "first webhook")
    assert revisions() == []
    sooner = now + timedelta(days=1)
    produce_at(broker, [webhook(sooner)])  # the same entries, a date two days earlier
    pipeline.wait_for(lambda: revisions() != [], 60, "the revised estimate")
    produce_at(broker, [webhook(sooner)])  # resent as it was
    settle(pipeline, "resent")
    assert revisions() == [sooner.date().isoformat()]
    assert worker_crashes(pipeline) == []


def test_bursts_of_whole_history_webhooks_reach_each_scan_once(broker: str, pipeline: Pipeline) -> None:
    """Hostile variants of EasyPost's documented tracker.updated, all sent at once so that one
    router step reads several webhooks of a package: histories growing, repeated, arriving out of
    order, their entries shuffled, the tracker's estimate moving and going back. Every scan
    reaches its order's timeline once, no scan goes to its order twice with the same estimate,
    and the carrier's last word on the date is the one the order holds."""
    import random

    now = datetime.now(UTC)
    document = orjson.loads((PAYLOADS / "easypost_tracker_updated.json").read_bytes())
    template = document["result"]["tracking_details"][0]
    statuses = ["pre_transit", "in_transit", "in_transit", "in_transit", "out_for_delivery"]
    earlier, later = (now + timedelta(days=2)).date(), (now + timedelta(days=4)).date()
    rng = random.Random(20261206)
    packages = 8
    setup, burst, last_estimate = [], [], {}
    for p in range(packages):
        order_id, number = f"ORD-BURST-{p}", f"94001108988250225{p:05d}"
        details = [{**template, "status": status, "message": f"{status} {i}",
                    "datetime": iso(now - timedelta(hours=10 - i))} for i, status in enumerate(statuses)]
        webhooks = []
        for k in range(1, len(details) + 1):
            entries = list(details[:k])
            if rng.random() < 0.3:  # a feed that does not keep its history in order
                rng.shuffle(entries)
            estimate = rng.choice([earlier, later])
            for _ in range(2 if rng.random() < 0.3 else 1):  # resent as it was
                webhooks.append((entries, estimate))
        if p % 2:  # arriving out of order (the full history is not necessarily the last)
            rng.shuffle(webhooks)
        # Then only the tracker's estimate changes, and goes back: the whole history resent.
        final = max(webhooks, key=lambda w: len(w[0]))[1]
        for estimate in (later if final == earlier else earlier, final):
            entries = list(details)
            if rng.random() < 0.5:
                rng.shuffle(entries)
            webhooks.append((entries, estimate))
        last_estimate[order_id] = webhooks[-1][1]
        for entries, estimate in webhooks:
            body = {**document, "result": {**document["result"], "tracking_code": number, "carrier": "USPS",
                                           "tracking_details": entries, "est_delivery_date": f"{estimate}T17:00:00Z"}}
            burst.append((order_id, (topics.CARRIER_SCANS_RAW, number.encode(), orjson.dumps(body),
                                     [(topics.SOURCE_HEADER, b"easypost")], None)))
        setup += [(topics.FC_EVENTS, order_id.encode(), order_placed(order_id, now - timedelta(hours=12),
                                                                     now + timedelta(days=1), now + timedelta(days=3),
                                                                     zone=afternoon_zone(now)), [], None),
                  (topics.FC_EVENTS, order_id.encode(), package_shipped(order_id, number, now - timedelta(hours=11),
                                                                        "USPS"), [], None)]
    # Interleaved across packages, each package's own order kept (one partition keeps it too).
    interleaved = []
    queues = {p: [m for o, m in burst if o == f"ORD-BURST-{p}"] for p in range(packages)}
    while any(queues.values()):
        p = rng.choice([p for p, q in queues.items() if q])
        interleaved.append(queues[p].pop(0))

    def package(order_id: str) -> dict:
        try:
            status, view = pipeline.lookup(order_id)
        except (OSError, ValueError):  # the worker is not up, or owns no partitions yet
            return {}
        return view["packages"][0] if status == 200 and view["packages"] else {}

    def timeline(order_id: str) -> list[dict]:
        return package(order_id).get("timeline", [])

    pipeline.start("worker", "notifier")
    produce_at(broker, setup)
    pipeline.wait_for(lambda: all(package(f"ORD-BURST-{p}") for p in range(packages)), 90, "every shipment")
    produce_at(broker, interleaved)
    pipeline.wait_for(lambda: all(len(timeline(f"ORD-BURST-{p}")) >= len(statuses) for p in range(packages)),
                      120, "every scan on its order's timeline")
    settle(pipeline, "burst")
    forwarded: dict[str, list[tuple[str, str | None]]] = {}
    for envelope in clients.read_topic(broker, topics.ORDER_EVENTS, PARTITIONS):
        for doc in envelope if isinstance(envelope, list) else [envelope]:
            if isinstance(doc, dict) and doc.get("order_id", "").startswith("ORD-BURST-") and "tracking_number" in doc:
                forwarded.setdefault(doc["order_id"], []).append((doc["event_id"], doc.get("estimated_delivery")))
    for p in range(packages):
        order_id = f"ORD-BURST-{p}"
        shown = timeline(order_id)
        assert sorted(e["message"] for e in shown) == sorted(f"{s} {i}" for i, s in enumerate(statuses)), order_id
        sent = forwarded[order_id]
        assert len({event_id for event_id, _ in sent}) == len(statuses), order_id
        # A scan goes to its order again only with another estimate than it went with before.
        by_scan: dict[str, list[str | None]] = {}
        for event_id, estimate in sent:
            by_scan.setdefault(event_id, []).append(estimate)
        for event_id, estimates in by_scan.items():
            assert all(a != b for a, b in zip(estimates, estimates[1:], strict=False)), (order_id, event_id, estimates)
        assert package(order_id)["carrier_current_estimate"] == last_estimate[order_id].isoformat(), order_id
    assert worker_crashes(pipeline) == []


def test_a_stored_tracking_entry_that_does_not_decode_costs_only_its_own_records(broker: str,
                                                                                 pipeline: Pipeline) -> None:
    """A tracking number's stored entry is damaged (a disk fault, a hand edit, a bad release's
    write): it reaches the router's table through the table's changelog while the worker is
    down, as a restore would bring it back. A scan of that number goes to the DLQ with its
    original bytes; the worker keeps running and the scan of another number reaches its order."""
    now = datetime.now(UTC)
    good_scan = carrier_events("TGOOD", [("in_transit", now - timedelta(minutes=5))])
    damaged_scan = carrier_events("TDAMAGED", [("in_transit", now - timedelta(minutes=5))])

    def timeline(order_id: str) -> list[dict]:
        try:
            status, view = pipeline.lookup(order_id)
        except (OSError, ValueError):  # the worker is not up, or owns no partitions yet
            return []
        return view["packages"][0]["timeline"] if status == 200 and view["packages"] else []

    def shipped(order_id: str) -> bool:
        try:
            status, view = pipeline.lookup(order_id)
        except (OSError, ValueError):
            return False
        return status == 200 and bool(view["packages"])

    pipeline.start("worker")
    produce_at(broker, [
        (topics.FC_EVENTS, b"ORD-GOOD", order_placed("ORD-GOOD", now - timedelta(hours=3), now + timedelta(days=1),
                                                     now + timedelta(days=3)), [], None),
        (topics.FC_EVENTS, b"ORD-GOOD", package_shipped("ORD-GOOD", "TGOOD", now - timedelta(hours=2)), [], None)])
    pipeline.wait_for(lambda: shipped("ORD-GOOD"), 90, "the shipment")
    pipeline.stop("worker")
    # Faust names a table's changelog "<app id>-<table>-changelog"; the same key lands on the
    # same partition as the raw scans (murmur2), where the router reads it.
    produce_at(broker, [("trackline-tracking-changelog", b"TDAMAGED", b"0|1|{\"links\": 42", [], None)])
    pipeline.start("worker")
    pipeline.wait_for(lambda: shipped("ORD-GOOD"), 90, "the restarted worker")
    produce_at(broker, [(topics.CARRIER_SCANS_RAW, b"TDAMAGED", damaged_scan, GENERIC, None),
                        (topics.CARRIER_SCANS_RAW, b"TGOOD", good_scan, GENERIC, None)])
    pipeline.wait_for(lambda: len(timeline("ORD-GOOD")) == 1, 90, "the good scan on its order's timeline")
    letters = dead_letters(broker, 1)
    assert letters[b"TDAMAGED"] == ("internal_error", damaged_scan)
    assert worker_crashes(pipeline) == []
    assert pipeline.processes["worker"].poll() is None  # still running
