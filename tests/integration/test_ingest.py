"""`trackline ingest` as carriers and fulfillment systems meet it: real HTTP requests, signed
with each source's documented scheme, against the real service process and the embedded
(memory-only) broker. What a sender notices is the answer; what trackline promises behind a
202 is that the bytes are on the broker, unchanged, under the right key."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from broker import clients
from broker.embedded import EmbeddedBroker, free_port
from models import topics
from models.ingest import RECEIVED_AT_HEADER
from models.webhook_signatures import (
    AFTERSHIP_HEADER,
    EASYPOST_HEADER,
    TRACKLINE_HEADER,
    aftership_signature,
    easypost_signature,
    trackline_signature,
)
from tests.integration.conftest import PARTITIONS, Pipeline
from trackline.webhook_sender import signed_request

PAYLOADS = Path(__file__).parents[1] / "payloads"
SECRETS = {"aftership": "as-secret-1", "easypost": "ep-secret-1", "shippo": "shippo-url-token",
           "generic": "generic-secret", "x12_214": "x12-secret", "fc": "fc-secret"}


def configure(run: Pipeline, **extra: str) -> Pipeline:
    for source, secret in SECRETS.items():
        run.env[f"TRACKLINE_SECRET_{source.upper()}"] = secret
    run.env.update(extra)
    return run


def signed(source: str, body: bytes, at: datetime | None = None) -> tuple[str, dict[str, str]]:
    """The path and headers a correctly configured sender of ``source`` uses."""
    return signed_request(source, body, SECRETS[source.replace("-", "_")], at)


def midday_zone() -> str:
    """A zone where it is about noon now: "out for delivery" is old news once the delivery
    address's local day is over, so a scan from an hour ago must not straddle its midnight."""
    offset = max(-12, min(14, 12 - datetime.now(UTC).hour))
    return f"Etc/GMT{-offset:+d}"  # POSIX sign: Etc/GMT-2 is two hours ahead of UTC


def order_placed(order_id: str, at: datetime) -> dict:
    """The documented fulfillment example, for ``order_id`` placed at ``at``, delivered where it
    is about midday now."""
    event = orjson.loads((PAYLOADS / "fulfillment_order_placed.json").read_bytes())
    return {**event, "event_id": f"{order_id}-placed", "order_id": order_id, "occurred_at": at.isoformat(),
            "delivery_time_zone": midday_zone(),
            "ship_by": (at + timedelta(hours=12)).isoformat(),
            "promised_delivery_date": (at + timedelta(days=7)).date().isoformat()}


def recent(body: bytes) -> tuple[bytes, datetime]:
    """EasyPost's ``body`` with every time moved so that its last tracking detail was an hour
    ago; and that time."""
    last = datetime.fromisoformat(orjson.loads(body)["result"]["tracking_details"][-1]["datetime"])
    shift = datetime.now(UTC) - timedelta(hours=1) - last

    def moved(match: re.Match[bytes]) -> bytes:
        return b'"%s"' % (datetime.fromisoformat(match[1].decode()) + shift).strftime("%Y-%m-%dT%H:%M:%SZ").encode()

    return re.sub(rb'"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)"', moved, body), last + shift


def send(run: Pipeline, source: str, body: bytes) -> tuple[int, dict, dict]:
    path, headers = signed(source, body)
    return run.post(path, body, headers)


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list:
    """Every record on ``topic`` once ``expected`` arrived (and a moment more, for any extra)."""
    consumer = clients.consumer(bootstrap, f"test-read-{topic}-{time.monotonic_ns()}")
    consumer.subscribe([topic])
    found: list = []
    deadline = time.monotonic() + timeout
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                found.append(message)
            if len(found) >= expected:
                quiet_until = quiet_until or time.monotonic() + 3
                if time.monotonic() > quiet_until:
                    break
    finally:
        consumer.close()
    return found


DOCUMENTED = {
    "easypost": (PAYLOADS / "easypost_tracker_updated.json").read_bytes(),
    "aftership": (PAYLOADS / "aftership_tracking_update.json").read_bytes(),
    "shippo": (PAYLOADS / "shippo_track_updated.json").read_bytes(),
    "generic": (PAYLOADS / "generic_carrier_events.json").read_bytes(),
    "x12-214": (PAYLOADS / "x12_214_parcel_summer.edi").read_bytes(),
}


def test_each_source_signed_as_documented_is_accepted_and_stored_unchanged(pipeline: Pipeline) -> None:
    configure(pipeline).start("ingest")
    pipeline.ingest_ready()
    before = datetime.now(UTC)
    for source, body in DOCUMENTED.items():
        path, headers = signed(source, body)
        status, answer, _ = pipeline.post(path, body, headers)
        assert status == 202, (source, answer)
    records = read_topic(pipeline.bootstrap, topics.CARRIER_SCANS_RAW, len(DOCUMENTED))
    assert len(records) == len(DOCUMENTED)
    by_source = {dict(r.headers())[topics.SOURCE_HEADER].decode(): r for r in records}
    assert set(by_source) == set(DOCUMENTED)
    for source, record in by_source.items():
        assert record.value() == DOCUMENTED[source], f"{source}: the bytes changed on the way"
        received = datetime.fromisoformat(dict(record.headers())[RECEIVED_AT_HEADER].decode())
        assert before - timedelta(seconds=1) <= received <= datetime.now(UTC)
        # The broker timestamp is the receipt time: the stream's ingest-time clock reads it.
        assert abs(record.timestamp()[1] / 1000 - received.timestamp()) < 0.01
    assert by_source["easypost"].key() == b"9400110898825022579493"
    assert by_source["aftership"].key() == orjson.loads(DOCUMENTED["aftership"])["msg"]["tracking_number"].encode()
    assert by_source["shippo"].key() == orjson.loads(DOCUMENTED["shippo"])["data"]["tracking_number"].encode()
    assert by_source["generic"].key() == orjson.loads(DOCUMENTED["generic"])["tracking_number"].encode()
    assert by_source["x12-214"].key() != b"unkeyed:x12-214"


def test_refused_requests_say_why_and_put_nothing_on_the_broker(pipeline: Pipeline) -> None:
    configure(pipeline, TRACKLINE_INGEST_MAX_BODY_BYTES="4096").start("ingest")
    pipeline.ingest_ready()
    body = DOCUMENTED["easypost"]
    generic = DOCUMENTED["generic"]
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    refusals = [
        ("/webhooks/easypost", body, {}, 401, "signature missing"),
        ("/webhooks/easypost", body, {EASYPOST_HEADER: easypost_signature(body, "someone-elses")}, 401,
         "signature mismatch"),
        # Signed, then changed on the way.
        ("/webhooks/aftership", body + b" ", {AFTERSHIP_HEADER: aftership_signature(body, SECRETS["aftership"])},
         401, "signature mismatch"),
        ("/webhooks/shippo?token=guess", DOCUMENTED["shippo"], {}, 401, "signature mismatch"),
        ("/webhooks/generic", generic, {TRACKLINE_HEADER: trackline_signature(generic, SECRETS["generic"], hour_ago)},
         401, "signature stale"),
        ("/webhooks/generic", generic, {TRACKLINE_HEADER: "v1=abc"}, 401, "signature malformed"),
        ("/webhooks/fedex", body, {}, 404, "no webhook source"),
        ("/webhooks/fc", body, {}, 404, "no webhook source"),
        ("/webhooks/easypost", b"{" + b" " * 5000 + b"}", {}, 413, "body over 4096 bytes"),
    ]
    for path, payload, headers, status, why in refusals:
        got, answer, _ = pipeline.post(path, payload, headers)
        assert (got, why in answer.get("error", "")) == (status, True), (path, got, answer)
    # A good one last: it is the only record on the topic.
    path, headers = signed("generic", generic)
    assert pipeline.post(path, generic, headers)[0] == 202
    records = read_topic(pipeline.bootstrap, topics.CARRIER_SCANS_RAW, 1)
    assert [r.value() for r in records] == [generic]


def test_chunked_body_over_the_limit_is_refused(pipeline: Pipeline) -> None:
    """No Content-Length up front (chunked): the limit still holds while reading."""
    import http.client

    configure(pipeline, TRACKLINE_INGEST_MAX_BODY_BYTES="4096").start("ingest")
    pipeline.ingest_ready()
    connection = http.client.HTTPConnection("127.0.0.1", pipeline.ingest_port, timeout=30)
    connection.request("POST", "/webhooks/generic", body=iter([b"{" + b" " * 3000, b" " * 3000 + b"}"]),
                       headers={"Content-Type": "application/json"}, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413
    assert b"body over 4096 bytes" in response.read()


def test_a_flood_of_badly_signed_requests_leaves_good_ones_accepted_and_produces_nothing(pipeline: Pipeline) -> None:
    import aiohttp

    configure(pipeline).start("ingest")
    pipeline.ingest_ready()
    url = f"http://127.0.0.1:{pipeline.ingest_port}"
    good_bodies = [orjson.dumps({"carrier": "UPS", "tracking_number": f"1ZFLOOD{n:04d}", "events": [
        {"status": "in_transit", "occurred_at": "2026-11-27T10:00:00Z", "message": "Departed"}]}) for n in range(40)]

    async def flood() -> tuple[list[int], list[int]]:
        async with aiohttp.ClientSession() as session:
            async def bad(n: int) -> int:
                body = b'{"tracking_number": "FORGED%d"}' % n
                async with session.post(f"{url}/webhooks/generic", data=body, headers={
                        TRACKLINE_HEADER: f"t={int(time.time())},v1={'0' * 64}"}) as r:
                    return r.status

            async def good(body: bytes) -> int:
                path, headers = signed("generic", body)
                async with session.post(url + path, data=body, headers=headers) as r:
                    return r.status

            bad_answers = asyncio.gather(*(bad(n) for n in range(2000)))
            good_answers = asyncio.gather(*(good(b) for b in good_bodies))
            return list(await bad_answers), list(await good_answers)

    bad_answers, good_answers = asyncio.run(flood())
    assert set(bad_answers) == {401}
    assert good_answers == [202] * len(good_bodies)
    records = read_topic(pipeline.bootstrap, topics.CARRIER_SCANS_RAW, len(good_bodies))
    assert sorted(r.value() for r in records) == sorted(good_bodies)


def test_while_the_broker_is_unreachable_senders_are_told_to_retry(tmp_path: Path) -> None:
    """The embedded broker is memory-only: stopping it is the outage, and a new one on the same
    port (topics created again) is the recovery."""
    port = free_port()
    broker = EmbeddedBroker(port=port).start()
    clients.create_topics(broker.bootstrap, PARTITIONS)
    run = configure(Pipeline(broker.bootstrap, tmp_path / "data"), TRACKLINE_INGEST_ACK_TIMEOUT="2")
    try:
        run.start("ingest")
        run.ingest_ready()
        body = DOCUMENTED["generic"]
        assert send(run, "generic", body)[0] == 202
        broker.stop()
        status, answer, headers = send(run, "generic", body)
        assert status == 503 and headers.get("Retry-After"), answer
        broker = EmbeddedBroker(port=port).start()
        clients.create_topics(broker.bootstrap, PARTITIONS)
        deadline = time.monotonic() + 60
        while (status := send(run, "generic", body)[0]) == 503:
            assert time.monotonic() < deadline, "still 503 a minute after the broker came back"
            time.sleep(1)
        assert status == 202
        assert [r.value() for r in read_topic(broker.bootstrap, topics.CARRIER_SCANS_RAW, 1)] == [body]
    finally:
        run.stop()
        broker.stop()


def test_webhooks_through_ingest_reach_the_customer_and_ignored_events_are_dead_lettered(pipeline: Pipeline) -> None:
    """An order placed and shipped through /events/fc and an EasyPost tracker.updated through
    /webhooks/easypost tell the customer; an EasyPost event trackline does not read gets its
    202 (so EasyPost stops retrying) and lands in the DLQ as unsupported_event, with its bytes."""
    configure(pipeline).start("ingest", "worker", "notifier")
    pipeline.ingest_ready()
    # EasyPost's documented tracker (USPS, out for delivery at its last detail), moved to this week.
    webhook, last_scan = recent(DOCUMENTED["easypost"])
    shipped_at = last_scan - timedelta(hours=18)  # notices older than a day are stale, not sent
    for event in (order_placed("ORD-ING", shipped_at - timedelta(hours=2)),
                  {"type": "package_shipped", "event_id": "ing-2", "order_id": "ORD-ING",
                   "occurred_at": shipped_at.isoformat(), "package_id": "PKG-ING", "carrier": "USPS",
                   "tracking_number": "9400110898825022579493"}):
        assert send(pipeline, "fc", orjson.dumps(event))[0] == 202
    pipeline.wait_for(lambda: any(c["type"] == "shipped" for c in pipeline.delivered()), 90, "shipped notice")
    assert send(pipeline, "easypost", webhook)[0] == 202
    ignored = orjson.dumps({"id": "evt_batch_1", "object": "Event", "description": "batch.created",
                            "result": {"id": "batch_1", "object": "Batch", "state": "created"}})
    status, answer, _ = send(pipeline, "easypost", ignored)
    assert status == 202 and answer["key"] == "unkeyed:easypost"
    letters = read_topic(pipeline.bootstrap, topics.DLQ, 1, timeout=90)
    assert [(dict(m.headers())[topics.DLQ_REASON_HEADER], m.value()) for m in letters] == [
        (b"unsupported_event", ignored)]
    pipeline.wait_for(lambda: any(c["type"] == "out_for_delivery" for c in pipeline.delivered()), 90,
                      "the out-for-delivery notice from EasyPost's scans")
    assert {c["order_id"] for c in pipeline.delivered()} == {"ORD-ING"}


def test_an_event_keyed_by_something_else_than_its_order_is_dead_lettered(pipeline: Pipeline) -> None:
    """A producer that writes straight to the topic with a wrong key gets ``wrong_key``: its state
    would land on another partition than the order's other events."""
    from tests.integration.conftest import produce

    pipeline.start("worker")
    body = orjson.dumps(order_placed("ORD-WK", datetime.now(UTC)))
    produce(pipeline.bootstrap, [(topics.FC_EVENTS, b"ORD-OTHER", body, [])])
    letters = read_topic(pipeline.bootstrap, topics.DLQ, 1, timeout=90)
    assert [dict(m.headers())[topics.DLQ_REASON_HEADER] for m in letters] == [b"wrong_key"]
