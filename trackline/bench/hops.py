"""Where a scan's latency goes: the three hops between a webhook and its notification command.

Read after a latency point from the broker's record timestamps (the worker's produce times on
one machine's clock), so nothing reads the topics while the point is measured:
- router: the webhook's ingest time (``caused_by_ingested_at``) to the ``order-events``
  envelope that carried its scan to the order (matched by order and the scan's time);
- order: that envelope to the notification intent the order tracker emitted (by command id);
- policy: the intent to the command the notification policy addressed.
"""

from __future__ import annotations

import time
from datetime import datetime

import orjson
from confluent_kafka import Consumer, TopicPartition

from models import topics

TRACKED = ("out_for_delivery", "delivered")  # the commands the end-to-end latency counts


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class Hops:
    """Marks where the internal topics end when a point starts; reads from there once it is over."""

    def __init__(self, bootstrap: str, partitions: int) -> None:
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-hops", "enable.auto.commit": False})
        self.start: dict[tuple[str, int], int] = {}

    def mark(self) -> None:
        for topic in (topics.ORDER_EVENTS, topics.NOTIFICATION_INTENTS):
            for partition in range(self.partitions):
                _, high = self.reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
                self.start[(topic, partition)] = high

    def split(self, commands: list[dict], prefix: str) -> dict[str, list[float]]:
        """Seconds per hop for each tracked command of the point (``commands``: the command
        documents with their record timestamp under ``"_ts"``)."""
        scans, intents = self._read(prefix)
        hops: dict[str, list[float]] = {"router": [], "order": [], "policy": []}
        for command in commands:
            routed = scans.get((command["order_id"], epoch(command["occurred_at"])))
            intended = intents.get(command["command_id"])
            if routed is None or intended is None:
                continue
            hops["router"].append(routed - epoch(command["caused_by_ingested_at"]))
            hops["order"].append(intended - routed)
            hops["policy"].append(command["_ts"] - intended)
        return hops

    def _read(self, prefix: str) -> tuple[dict[tuple[str, float], float], dict[str, float]]:
        ends: dict[tuple[str, int], int] = {}
        for (topic, partition) in self.start:
            _, ends[(topic, partition)] = self.reader.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10, cached=False)
        self.reader.assign([TopicPartition(topic, partition, offset)
                            for (topic, partition), offset in self.start.items()])
        scans: dict[tuple[str, float], float] = {}  # (order id, scan time) -> envelope's record time
        intents: dict[str, float] = {}  # command id -> intent's record time
        left = {tp for tp, end in ends.items() if end > self.start[tp]}
        # Tansu reports a partition's end as its last record batch's first offset + 1: past the
        # ends, read on until a poll comes back empty, so that batch is read whole.
        quiet = 0
        deadline = time.monotonic() + 120
        while (left or quiet < 1) and time.monotonic() < deadline:
            messages = self.reader.consume(10000, timeout=0.5)
            quiet = 0 if messages else quiet + 1
            for m in messages:
                if m.error():
                    continue
                ts = m.timestamp()[1] / 1000
                if m.value() is None:
                    pass
                elif m.topic() == topics.ORDER_EVENTS:
                    envelope = orjson.loads(m.value())
                    for doc in envelope if isinstance(envelope, list) else [envelope]:
                        order_id = doc.get("order_id", "") if isinstance(doc, dict) else ""
                        if order_id.startswith(prefix) and "tracking_number" in doc:
                            key = (order_id, epoch(doc["occurred_at"]))
                            scans[key] = min(ts, scans.get(key, ts))
                else:
                    doc = orjson.loads(m.value())
                    if doc.get("order_id", "").startswith(prefix) and doc.get("type") in TRACKED:
                        intents.setdefault(doc["command_id"], ts)
                if m.offset() + 1 >= ends[(m.topic(), m.partition())]:
                    left.discard((m.topic(), m.partition()))
        self.reader.unassign()
        return scans, intents

    def close(self) -> None:
        self.reader.close()
