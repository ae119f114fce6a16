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
from confluent_kafka import KafkaError, Message

from broker import clients
from models import topics
from models.effects import HistoryRecord, stable_id
from models.errors import InvalidPayload, dead_letter_headers, internal_error

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


def decode_command(raw: bytes) -> tuple[dict, tuple[bytes, bytes]]:
    """A command and its delivery row, or ``InvalidPayload("invalid_internal_event")``."""
    try:
        command = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload("invalid_internal_event", f"not JSON: {exc}") from exc
    if not isinstance(command, dict):
        raise InvalidPayload("invalid_internal_event", "a notification command must be a JSON object")
    if not isinstance(command.get("command_id"), str) or not command["command_id"]:
        raise InvalidPayload("invalid_internal_event", "command_id: missing or not a string")
    if not isinstance(command.get("occurred_at"), str):
        raise InvalidPayload("invalid_internal_event", "occurred_at: missing or not a string")
    try:
        # Built before delivering: a command whose row cannot be written is not delivered either.
        row = delivery_record(command, "delivered", datetime.now(timezone.utc))
    except (ValueError, TypeError, KeyError) as exc:  # ValidationError, a bad time, a field of the wrong type
        raise InvalidPayload("invalid_internal_event", f"{type(exc).__name__}: {exc}"[:1000]) from exc
    return command, row


class SendFailed(Exception):
    """The broker did not take a record this worker produced; the batch's offsets stay uncommitted."""


class NotificationWorker:
    def __init__(self, bootstrap: str, outbox: Path) -> None:
        self.bootstrap = bootstrap
        self.outcomes = clients.producer(bootstrap)
        self.channel = JsonLinesChannel(outbox)
        self.stopping = Event()
        self.delivered = 0
        self.duplicates_skipped = 0
        self.rejected = 0  # commands dead-lettered
        self.failed_sends: list[tuple[KafkaError, Message]] = []

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
                    self._handle(message)
                if messages:
                    self.channel.sync()
                    # Delivery rows and dead letters first: a crash re-sends, never loses them.
                    if not self._sent(consumer):
                        return  # stopped while the broker refused them: nothing committed
                    consumer.commit(asynchronous=False)
                elif max_idle is not None and time.monotonic() - last_message > max_idle:
                    break
        finally:
            consumer.close()
            self.channel.close()

    def _handle(self, message: Message) -> None:
        """One command: delivered, skipped as a duplicate, or dead-lettered; never stops the batch."""
        raw = message.value() or b""
        try:
            command, (key, value) = decode_command(raw)
            if self.channel.deliver(command):
                self.delivered += 1
                self._produce(topics.HISTORY, key, value)
            else:
                self.duplicates_skipped += 1
        except InvalidPayload as error:
            self._dead_letter(message, error, error)
        except OSError:  # the channel itself failed (disk full, ...): not this command's fault
            raise
        except Exception as exc:  # a bug met on this one command
            self._dead_letter(message, internal_error(exc), exc)

    def _dead_letter(self, message: Message, error: InvalidPayload, cause: BaseException) -> None:
        log.error("dead letter from %s[%s]@%s: %s", message.topic(), message.partition(), message.offset(), error)
        self.rejected += 1
        source = next((v or b"" for k, v in message.headers() or () if k == topics.SOURCE_HEADER), b"")
        headers = dead_letter_headers(error, message.topic(), message.partition(), message.offset(), source, cause)
        self._produce(topics.DLQ, message.key(), message.value() or b"", headers)

    def _produce(self, topic: str, key: bytes | None, value: bytes, headers: list | None = None) -> None:
        while True:
            try:
                self.outcomes.produce(topic, key=key, value=value, headers=headers, on_delivery=self._on_delivery)
                break
            except BufferError:  # the local queue is full: let it drain
                self.outcomes.poll(0.5)
        self.outcomes.poll(0)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.failed_sends.append((error, message))

    def _sent(self, consumer) -> bool:
        """Wait until the broker acknowledged everything produced; re-send what it refused.

        While it refuses, consumption is paused (the group membership kept), so the
        commit that follows never covers a record whose outcome was not stored.
        """
        delay = 0.5
        paused = False
        try:
            while True:
                remaining = self.outcomes.flush(30)
                if remaining == 0 and not self.failed_sends:
                    return True
                failed, self.failed_sends = self.failed_sends, []
                log.warning("%d records not acknowledged, %d refused (%s); retrying in %.1fs", remaining,
                            len(failed), failed[0][0] if failed else "timeout", delay)
                if self.stopping.is_set():
                    return False
                if not paused:
                    consumer.pause(consumer.assignment())
                    paused = True
                consumer.poll(0)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
                for _, message in failed:
                    self._produce(message.topic(), message.key(), message.value(), message.headers())
        finally:
            if paused:
                consumer.resume(consumer.assignment())
