"""Reference notification worker: ``trackline.notifications`` -> a delivery channel.

The channel here is a JSON-lines file (one delivered command per line), standing in for
an e-mail, SMS or push provider. Commands are delivered at least once by Kafka, so the
worker skips ``command_id``s it has already delivered (remembered in the file itself),
and commits offsets only after the lines are on disk.

A command deferred by the customer's quiet hours carries ``send_after``; it is handed to
the channel with that time, as providers take it (SendGrid ``send_at``, Twilio scheduled
messages, APNs/FCM scheduled pushes), so nothing waits in this worker or is dropped.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from datetime import datetime, timezone
from pathlib import Path
from threading import Event

import orjson

from broker import clients
from models import topics
from models.effects import HistoryRecord, stable_id

log = logging.getLogger("trackline.notifier")
GROUP = "trackline-notifier"


class JsonLinesChannel:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.delivered: set[str] = set()
        if path.exists():
            for line in path.read_bytes().splitlines():
                if line.strip():
                    self.delivered.add(orjson.loads(line)["command_id"])
        self._file = open(path, "ab")

    def deliver(self, command: dict) -> bool:
        """Append the command unless it was delivered before; True if delivered now."""
        if command["command_id"] in self.delivered:
            return False
        self._file.write(orjson.dumps(command) + b"\n")
        self.delivered.add(command["command_id"])
        return True

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def delivery_record(command: dict, outcome: str, at: datetime) -> tuple[bytes, bytes]:
    """What this worker did with a command, as a history row (key: order id) for ClickHouse."""
    record = HistoryRecord(
        record_id=stable_id(command["command_id"], "delivery", outcome), record_type="delivery",
        order_id=command.get("order_id", ""), package_id=command.get("package_id", ""),
        event_id=command["command_id"], source=",".join(command.get("channels") or []),
        status=command.get("type", ""), detail=outcome,
        occurred_at=datetime.fromisoformat(command["occurred_at"].replace("Z", "+00:00")), ingested_at=at,
        attributes={"outcome": outcome, "send_after": command.get("send_after") or "",
                    "caused_by_ingested_at": command.get("caused_by_ingested_at") or ""})
    return record.order_id.encode(), b"[" + record.model_dump_json().encode() + b"]"


class NotificationWorker:
    def __init__(self, bootstrap: str, outbox: Path) -> None:
        self.bootstrap = bootstrap
        self.outcomes = clients.producer(bootstrap)
        self.channel = JsonLinesChannel(outbox)
        self.stopping = Event()
        self.delivered = 0
        self.duplicates_skipped = 0
        self.rejected = 0

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())

    def run(self, max_idle: float | None = None) -> None:
        consumer = clients.consumer(self.bootstrap, GROUP)
        consumer.subscribe([topics.NOTIFICATIONS])
        last_message = time.monotonic()
        try:
            while not self.stopping.is_set():
                messages = [m for m in consumer.consume(1000, timeout=0.2) if not m.error()]
                if messages:
                    last_message = time.monotonic()
                for message in messages:
                    self._deliver(message.value() or b"")
                if messages:
                    self.channel.sync()
                    self.outcomes.flush(30)  # delivery rows first: a crash re-sends, never loses them
                    consumer.commit(asynchronous=False)
                elif max_idle is not None and time.monotonic() - last_message > max_idle:
                    break
        finally:
            consumer.close()
            self.channel.close()

    def _deliver(self, raw: bytes) -> None:
        try:
            command = orjson.loads(raw)
            command["command_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            # Commands come from our own worker; one we cannot read is logged, not fatal.
            log.error("unreadable notification command: %r", raw[:200])
            self.rejected += 1
            return
        if self.channel.deliver(command):
            self.delivered += 1
            key, value = delivery_record(command, "delivered", datetime.now(timezone.utc))
            self.outcomes.produce(topics.HISTORY, key=key, value=value)
            self.outcomes.poll(0)
        else:
            self.duplicates_skipped += 1
