"""Topics every notifier process reads whole: the delivery ledger and customers' contacts.

Both are compacted and keyed by something other than the order, so each process reads every
partition (assigned, not in a group) and keeps the latest value per key. ``catch_up`` reads to
the ends the broker reports now: whatever was written before a command was produced is known
before that command is handled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from threading import Event
from typing import Generic, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from broker import clients
from models.delivery import LedgerEntry
from models.preferences import parse_preferences
from notifier.channels import Contact

log = logging.getLogger("trackline.notifier")
V = TypeVar("V")


class ViewStopped(Exception):
    """Asked to stop while the broker could not be read."""


class TopicView(Generic[V]):
    def __init__(self, bootstrap: str, topic: str, decode: Callable[[bytes], V],
                 on_change: Callable[[bytes, V | None], None] | None = None, stopping: Event | None = None) -> None:
        self.topic = topic
        self.stopping = stopping  # set: stop waiting for an unreachable broker
        self.decode = decode
        self.on_change = on_change or (lambda key, value: None)  # told every value read (None: removed)
        self.values: dict[bytes, V] = {}
        self.consumer: Consumer = clients.consumer(bootstrap, f"trackline-notifier-view-{topic}")
        metadata = self.consumer.list_topics(topic, timeout=30).topics[topic]
        self.partitions = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(metadata.partitions)]
        self.consumer.assign(self.partitions)

    def catch_up(self, timeout: float = 30.0) -> None:
        """Read to the ends the broker reports now. While the broker cannot be reached, wait and
        try again: a notifier that went on without its ledger would send twice."""
        delay = 0.5
        while True:
            try:
                self._catch_up(timeout)
                return
            except (KafkaException, TimeoutError) as error:
                if self.stopping is not None and self.stopping.is_set():
                    raise ViewStopped(f"stopped before {self.topic} was read to its end") from error
                log.warning("%s not read to its end (%s); retrying in %.1fs", self.topic, error, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _catch_up(self, timeout: float) -> None:
        ends = {}
        for tp in self.partitions:
            _, high = self.consumer.get_watermark_offsets(tp, timeout=10)
            ends[tp.partition] = high
        deadline = time.monotonic() + timeout
        while True:
            positions = {tp.partition: tp.offset for tp in self.consumer.position(self.partitions)}
            if all(positions[p] >= end or end == 0 for p, end in ends.items()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {self.topic} to its end in {timeout:.0f}s")
            for message in self.consumer.consume(1000, timeout=0.2):
                if message.error():
                    continue
                key = message.key() or b""
                if message.value() is None:
                    self.values.pop(key, None)
                    self.on_change(key, None)
                    continue
                try:
                    self.values[key] = self.decode(message.value())
                    self.on_change(key, self.values[key])
                except Exception as error:  # a record the policy dead-letters: not this process's concern
                    log.debug("skipping unreadable %s record at %s: %s", self.topic, message.offset(),
                              type(error).__name__)

    def get(self, key: bytes) -> V | None:
        return self.values.get(key)

    def close(self) -> None:
        self.consumer.close()


def contact_details(raw: bytes) -> Contact:
    preferences = parse_preferences(raw)
    return Contact(preferences.email, preferences.phone, preferences.time_zone)


def ledger_entry(raw: bytes) -> LedgerEntry:
    return LedgerEntry.load(raw)
