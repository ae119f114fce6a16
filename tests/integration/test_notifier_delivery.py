"""The reference notifier on the embedded broker: a command it cannot read is dead-lettered
with its bytes and reason, and every other command of the batch is still delivered."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import TopicPartition

from broker import clients
from models import topics
from models.effects import NotificationCommand, NotificationType
from notifier.worker import GROUP, NotificationWorker
from tests.integration.conftest import PARTITIONS, produce

pytestmark = pytest.mark.integration


def command(n: int) -> bytes:
    now = datetime.now(UTC)
    return NotificationCommand(command_id=f"cmd-{n}", type=NotificationType.shipped, order_id=f"ORD-{n}",
                               customer_id=f"CUST-{n}", occurred_at=now, caused_by_ingested_at=now
                               ).model_dump_json().encode()


def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list:
    consumer = clients.consumer(bootstrap, f"test-{uuid.uuid4()}")
    consumer.subscribe([topic])
    records, deadline = [], time.monotonic() + timeout
    try:
        while len(records) < expected and time.monotonic() < deadline:
            records += [m for m in consumer.consume(100, timeout=0.5) if not m.error()]
        time.sleep(1)  # anything beyond what was expected shows up too
        records += [m for m in consumer.consume(100, timeout=1) if not m.error()]
        return records
    finally:
        consumer.close()


def committed(bootstrap: str) -> int:
    consumer = clients.consumer(bootstrap, GROUP)
    try:
        tps = consumer.committed([TopicPartition(topics.NOTIFICATIONS, p) for p in range(PARTITIONS)], timeout=10)
        return sum(tp.offset for tp in tps if tp.offset > 0)
    finally:
        consumer.close()


def test_an_unreadable_command_is_dead_lettered_and_the_rest_delivered(broker, tmp_path):
    not_json = b'{"command_id": "cmd-broken", "type": '
    no_id = orjson.dumps({"type": "shipped", "order_id": "ORD-X", "occurred_at": "2026-11-02T08:00:00Z"})
    values = [command(n) for n in range(10)] + [not_json] + [command(n) for n in range(10, 20)] + [no_id]
    produce(broker, [(topics.NOTIFICATIONS, f"ORD-{n}".encode(), v, []) for n, v in enumerate(values)])

    worker = NotificationWorker(broker, tmp_path / "outbox.jsonl")
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while committed(broker) < len(values):
            assert thread.is_alive(), "the notifier stopped"
            assert time.monotonic() < deadline, f"offsets never committed past the batch: {committed(broker)}"
            time.sleep(0.5)
    finally:
        worker.stopping.set()
        thread.join(30)

    # Every readable command reached the customer's channel, once.
    delivered = [orjson.loads(line)["command_id"] for line in (tmp_path / "outbox.jsonl").read_bytes().splitlines()]
    assert sorted(delivered) == sorted(f"cmd-{n}" for n in range(20))
    # The two unreadable ones are on the DLQ: original bytes, the reason, where they came from.
    letters = read_all(broker, topics.DLQ, 2)
    assert sorted(m.value() for m in letters) == sorted([not_json, no_id])
    for letter in letters:
        headers = dict(letter.headers())
        assert headers[topics.DLQ_REASON_HEADER] == b"invalid_internal_event"
        assert headers[topics.DLQ_TOPIC_HEADER] == topics.NOTIFICATIONS.encode()
        assert int(headers[topics.DLQ_OFFSET_HEADER]) >= 0
        assert headers[topics.DLQ_DETAIL_HEADER]
    by_value = {m.value(): dict(m.headers()) for m in letters}
    assert b"command_id" in by_value[no_id][topics.DLQ_DETAIL_HEADER]
    assert b"not JSON" in by_value[not_json][topics.DLQ_DETAIL_HEADER]
    # And every delivery has its history row for ClickHouse.
    rows = read_all(broker, topics.HISTORY, 20)
    assert sorted(orjson.loads(m.value())[0]["event_id"] for m in rows) == sorted(f"cmd-{n}" for n in range(20))
