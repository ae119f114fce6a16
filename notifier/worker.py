"""Reference notification worker: ``trackline.notifications`` -> e-mail, SMS, push, or a file.

Each command goes to the channels the customer chose (``channels``), through the transport
configured for each (``notifier.channels``: SMTP for e-mail, signed HTTP for SMS and push);
channels with no transport configured share the JSON-lines file, the demo's channel.

Delivery is once per (command, channel): every outcome is recorded on the compacted ledger
topic every notifier process reads (``models.delivery``), and offsets are committed only after
the ledger, history and dead letters are acknowledged. A worker killed between sending and
recording sends again with the same idempotency key, where the receiver drops the repeat.

``send_after`` (quiet hours): HTTP providers and the file take it with the command and
schedule it themselves; SMTP cannot, so the worker holds the command on the ledger and sends
it when due, whichever process owns its partition then. Transient failures (SMTP 4xx, HTTP
5xx, timeouts) are retried with exponential back-off and jitter, also through the ledger;
permanent ones (SMTP 5xx, HTTP 4xx) and those past the retries fail: a history row and the DLQ.
No address for a channel (an e-mail channel without an e-mail on file) is recorded as
suppressed. Contact data never leaves this process: not in history, the ledger, logs or the DLQ.
"""

from __future__ import annotations

import logging
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from threading import Event
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Message

from broker import clients
from models import topics
from models.codec import checked_history, encode
from models.delivery import FINAL, LedgerEntry, RetryPolicy, State, after_failure, idempotency_key, ledger_key
from models.effects import stable_id
from models.errors import InvalidPayload, dead_letter_headers, internal_error
from notifier.channels import Channel, DeliveryError, JsonLinesChannel
from notifier.views import TopicView, ViewStopped, contact_details, ledger_entry
from streams import failpoints
from trackline import metrics

log = logging.getLogger("trackline.notifier")
GROUP = "trackline-notifier"


def delivery_record(command: dict, outcome: str, at: datetime, channel: str = "") -> tuple[bytes, bytes]:
    """What this worker did with a command on a channel, as a history row (key: order id)."""
    channel = channel or ",".join(command.get("channels") or [])
    record = checked_history(
        record_id=stable_id(command["command_id"], "delivery", channel, outcome), record_type="delivery",
        order_id=command.get("order_id", ""), package_id=command.get("package_id", ""),
        event_id=command["command_id"], source=channel,
        status=command.get("type", ""), detail=outcome,
        occurred_at=datetime.fromisoformat(command["occurred_at"].replace("Z", "+00:00")), ingested_at=at,
        attributes={"outcome": outcome.split(":")[0].split(" ")[0], "channel": channel,
                    "send_after": command.get("send_after") or "",
                    "caused_by_ingested_at": command.get("caused_by_ingested_at") or ""})
    return record.order_id.encode(), b"[" + encode(record) + b"]"


def decode_command(raw: bytes) -> dict:
    """A command as JSON, or ``InvalidPayload("invalid_internal_event")``."""
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
        # Checked before delivering: a command whose row cannot be written is not delivered either.
        delivery_record(command, "sent", datetime.now(UTC))
        _send_after(command)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # a bad time, a field of the wrong type
        raise InvalidPayload("invalid_internal_event", f"{type(exc).__name__}: {exc}"[:1000]) from exc
    return command


def _send_after(command: dict) -> datetime | None:
    value = command.get("send_after")
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


class SendFailed(Exception):
    """The broker did not take a record this worker produced; the batch's offsets stay uncommitted."""


class NotificationWorker:
    def __init__(self, bootstrap: str, outbox: Path, channels: list[Channel] | None = None,
                 retry: RetryPolicy | None = None, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 seed: int | None = None, group: str = GROUP, copy_all: bool = False) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.copy_all = copy_all  # every command also to the file, whatever its channels (the demo checks them)
        self.outcomes = clients.producer(bootstrap)
        self.file = JsonLinesChannel(outbox)
        self.channels: dict[str, Channel] = {c.name: c for c in channels or []}
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self.random = random.Random(seed)
        self.stopping = Event()
        # Held and retrying entries, by key: what the send-due loop looks at (not the whole ledger).
        self.pending: dict[bytes, LedgerEntry] = {}
        self.ledger = TopicView(bootstrap, topics.DELIVERY_LEDGER, ledger_entry, on_change=self._track_pending,
                                stopping=self.stopping)
        self.contacts = TopicView(bootstrap, topics.CUSTOMER_PREFERENCES, contact_details, stopping=self.stopping)
        self.outcome_counts: Counter[str] = Counter()  # "<channel> <outcome>": what a run did
        self.duplicates_skipped = 0
        self.rejected = 0  # commands dead-lettered as unreadable
        self.failed_sends: list[tuple[KafkaError, Message]] = []
        self.unrecorded: list[tuple[bytes, bytes]] = []  # ledger entries waiting for their history rows' ack
        self._owned: set[int] = set()

    @property
    def delivered(self) -> int:
        return sum(n for k, n in self.outcome_counts.items() if k.endswith(" sent"))

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())

    def route(self, channel: str) -> Channel:
        """The transport of a customer's channel; the file for channels with none configured."""
        return self.channels.get(channel, self.file)

    def run(self, max_idle: float | None = None) -> None:
        # A join waits as long as the rebalance timeout (max.poll.interval) of members that left
        # uncleanly; a batch here never blocks that long (retries go through the ledger).
        consumer = clients.consumer(self.bootstrap, self.group, **{"max.poll.interval.ms": 60000})
        consumer.subscribe([topics.NOTIFICATIONS], on_assign=self._assigned, on_revoke=self._revoked)
        last_message = time.monotonic()
        try:
            while not self.stopping.is_set():
                messages = [m for m in consumer.consume(1000, timeout=0.2) if not m.error()]
                started = time.perf_counter()
                if messages:
                    metrics.count_in(topics.NOTIFICATIONS, messages, topics.SOURCE_HEADER)
                    last_message = time.monotonic()
                    # What was recorded before these commands were produced is known first.
                    self.contacts.catch_up()
                    self.ledger.catch_up()
                for message in messages:
                    self._handle(message)
                worked = self._send_due()
                if messages or worked:
                    self.file.sync()
                    # Delivery rows and dead letters first, then the ledger, then the offsets: a
                    # crash re-sends (same idempotency key), never loses a row or a command.
                    if not self._sent(consumer):
                        return  # stopped while the broker refused them: nothing committed
                    unrecorded, self.unrecorded = self.unrecorded, []
                    for key, value in unrecorded:
                        self._produce(topics.DELIVERY_LEDGER, key, value)
                    if not self._sent(consumer):
                        return
                    if messages:
                        self._commit(consumer)
                    metrics.BATCH_SECONDS.labels("notifier").observe(time.perf_counter() - started)
                elif max_idle is not None and time.monotonic() - last_message > max_idle:
                    break
        except ViewStopped as stopped:  # the broker unreachable until the stop: nothing committed
            log.warning("%s", stopped)
        finally:
            consumer.close()
            self.file.close()
            self.ledger.close()
            self.contacts.close()

    @staticmethod
    def _commit(consumer: Any) -> None:
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as error:  # the broker went away: these commands come again, the ledger skips them
            log.warning("offsets not committed (%s); the commands will be read again", error)

    def _assigned(self, consumer: Any, partitions: list[Any]) -> None:
        self._owned |= {tp.partition for tp in partitions}
        self.ledger.catch_up()  # held commands of these partitions are this process's to send now
        self.contacts.catch_up()

    def _revoked(self, consumer: Any, partitions: list[Any]) -> None:
        self._owned -= {tp.partition for tp in partitions}

    def _handle(self, message: Message) -> None:
        """One command: on to each channel, skipped where already done, or dead-lettered."""
        raw = message.value() or b""
        try:
            command = decode_command(raw)
            if self.copy_all:
                self.file.send(command, None, "")
            for name in dict.fromkeys(self.route(c).name for c in command.get("channels") or ["email"]):
                key = ledger_key(command["command_id"], name)
                if (entry := self.ledger.get(key)) is not None:
                    if entry.state in FINAL:
                        self.duplicates_skipped += 1
                    continue  # held or retrying: sent when due
                self._attempt(command, name, message.partition(), attempts=0)
        except InvalidPayload as error:
            self._dead_letter(message, error, error)
        except OSError:  # the file channel itself failed (disk full, ...): not this command's fault
            raise
        except Exception as exc:  # a bug met on this one command
            self._dead_letter(message, internal_error(exc), exc)

    def _track_pending(self, key: bytes, entry: LedgerEntry | None) -> None:
        if entry is not None and entry.state in (State.held, State.retry):
            self.pending[key] = entry
        else:
            self.pending.pop(key, None)

    def _send_due(self) -> int:
        """Send the held and retrying commands that are due, of the partitions this process owns."""
        now = self.clock()
        due = [(key, entry) for key, entry in self.pending.items()
               if entry.state in (State.held, State.retry) and entry.due is not None and entry.due <= now
               and entry.partition in self._owned and entry.command is not None]
        if due:
            self.contacts.catch_up()  # addresses changed since: the latest applies
        for key, entry in due:
            assert entry.command is not None
            try:
                self._attempt(entry.command, key.decode().rsplit("|", 1)[1], entry.partition, entry.attempts)
            except OSError:  # the file channel itself failed: not this entry's fault
                raise
            except Exception as exc:  # an entry this code cannot send must not stop every later one
                failure = internal_error(exc)
                log.error("held %s cannot be sent: %s", key.decode(errors="replace"), failure)
                self._record(key, LedgerEntry(State.failed, now, entry.attempts, partition=entry.partition,
                                              detail=str(failure)), entry.command, "", "", history=False)
                headers = dead_letter_headers(failure, topics.DELIVERY_LEDGER, entry.partition, -1, b"", exc)
                self._produce(topics.DLQ, key, orjson.dumps(entry.command), headers)
        return len(due)

    def _attempt(self, command: dict, name: str, partition: int, attempts: int) -> None:
        channel = self.route(name)
        now = self.clock()
        key = ledger_key(command["command_id"], name)
        send_after = _send_after(command)
        if not channel.schedules and send_after is not None and send_after > now:
            self._record(key, LedgerEntry(State.held, now, attempts, send_after, partition, command), command,
                         name, f"deferred until {send_after.isoformat()}", history=attempts == 0)
            return
        contact = self.contacts.get(command.get("customer_id", "").encode())
        if channel.address(contact) is None:
            self._record(key, LedgerEntry(State.suppressed, now, attempts, partition=partition), command, name,
                         "suppressed: no_contact")
            return
        try:
            channel.send(command, contact, idempotency_key(command["command_id"], name))
        except DeliveryError as error:
            state, due = after_failure(attempts, error.permanent, self.retry, now, self.random.random())
            log.warning("%s via %s: %s (attempt %d, %s)", command["command_id"], name, error, attempts + 1,
                        "giving up" if state is State.failed else f"again at {due:%H:%M:%S}")
            if state is State.retry:
                self._record(key, LedgerEntry(state, now, attempts + 1, due, partition, command, str(error)),
                             command, name, "", history=False)
                return
            self._record(key, LedgerEntry(state, now, attempts + 1, partition=partition, detail=str(error)),
                         command, name, f"failed: {error}")
            failure = InvalidPayload("delivery_failed", f"{name}: {error}")
            headers = dead_letter_headers(failure, topics.NOTIFICATIONS, partition, -1, name.encode(), failure)
            self._produce(topics.DLQ, command.get("order_id", "").encode(), orjson.dumps(command), headers)
            return
        failpoints.kill_if("notifier_kill_after_send")  # the receiver has it; the ledger does not yet
        self._record(key, LedgerEntry(State.sent, now, attempts + 1, partition=partition), command, name, "sent")

    def _record(self, key: bytes, entry: LedgerEntry, command: dict, channel: str, outcome: str,
                history: bool = True) -> None:
        self.ledger.values[key] = entry  # this process knows at once; others through the topic
        metrics.NOTIFIER_OUTCOMES.labels(channel or "-", entry.state.value).inc()
        self._track_pending(key, entry)
        # On the ledger only once the history row is acknowledged (``run``): a process killed
        # in between sends again rather than leave a delivery no history row tells of.
        self.unrecorded.append((key, entry.dump()))
        if history:
            self.outcome_counts[f"{channel} {outcome.split(':')[0].split(' ')[0]}"] += 1
            row_key, row = delivery_record(command, outcome, entry.at, channel)
            self._produce(topics.HISTORY, row_key, row)

    def _dead_letter(self, message: Message, error: InvalidPayload, cause: BaseException) -> None:
        log.error("dead letter from %s[%s]@%s: %s", message.topic(), message.partition(), message.offset(), error)
        self.rejected += 1
        source = next((v or b"" for k, v in message.headers() or () if k == topics.SOURCE_HEADER), b"")
        headers = dead_letter_headers(error, message.topic(), message.partition(), message.offset(), source, cause,
                                      received_ms=message.timestamp()[1], original=list(message.headers() or ()))
        self._produce(topics.DLQ, message.key(), message.value() or b"", headers)

    def _produce(self, topic: str, key: bytes | None, value: bytes, headers: list | None = None) -> None:
        if topic == topics.DLQ:
            found = dict(headers or ())
            metrics.DEAD_LETTERS.labels(bytes(found.get(topics.DLQ_REASON_HEADER, b"-")).decode(),
                                        bytes(found.get(topics.DLQ_TOPIC_HEADER, b"-")).decode()).inc()
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
