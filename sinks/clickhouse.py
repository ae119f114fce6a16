"""History sink: ``trackline.history`` and ``trackline.dlq`` -> ClickHouse.

Batches rows (10,000 or one second, whichever first), inserts, and only then commits the
consumed offsets. If ClickHouse is down the sink pauses consumption and retries with
back-off, committing nothing, so a restart resumes exactly where rows stopped landing.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from threading import Event, Lock
from typing import Any

import clickhouse_connect
import orjson
from clickhouse_connect.driver.client import Client
from confluent_kafka import Message, TopicPartition

from broker import clients
from models import topics
from sinks.schema import DEAD_LETTER_COLUMNS, METRIC_COLUMNS, migrate

log = logging.getLogger("trackline.sink")

BATCH_ROWS = 10_000
BATCH_SECONDS = 1.0
GROUP = "trackline-sink"


def connect(dsn: str) -> Client:
    """``chdb:///path`` opens the embedded engine in this process; ``http(s)://`` a server."""
    return clickhouse_connect.get_client(dsn=dsn)


@dataclass
class Batch:
    """History documents as the worker wrote them (JSON), dead-letter rows, and the offsets they span.

    History goes to ClickHouse as JSON (``JSONEachRow``, which reads a JSON array of
    objects): decoding and re-encoding rows in Python cost more than the insert itself.
    """

    history: list[bytes] = field(default_factory=list)  # JSON arrays' insides, one per message
    history_rows: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)  # decoded rows, for lag figures
    dead_letters: list[tuple[Any, ...]] = field(default_factory=list)
    offsets: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    started: float = 0.0

    @property
    def rows(self) -> int:
        return self.history_rows + len(self.dead_letters)

    def add(self, message: Message) -> None:
        if not self.offsets:
            self.started = time.monotonic()
        key = (message.topic(), message.partition())
        first, _ = self.offsets.get(key, (message.offset(), 0))
        self.offsets[key] = (first, message.offset())
        if message.topic() == topics.DLQ:
            self.dead_letters.append(dead_letter_row(message))
            return
        value = (message.value() or b"").strip()
        if value.startswith(b"{"):
            value = b"[" + value + b"]"
        if not (value.startswith(b"[") and value.endswith(b"]")):
            # Only trackline writes this topic: a message that is not a JSON array is a bug upstream.
            log.error("skipping a history message that is not a JSON array: %r", value[:200])
            return
        inside = value[1:-1].strip()
        if inside:
            self.history.append(inside)
            self.history_rows += inside.count(b'"record_id"')
            if len(self.history) % SAMPLE_EVERY == 1:
                self.samples.extend(orjson.loads(value)[:SAMPLE_ROWS])

    def history_json(self) -> bytes:
        return b"[" + b",".join(self.history) + b"]"

    def rows_by_type(self) -> dict[str, int]:
        block = b"".join(self.history)
        return {kind: n for kind in RECORD_TYPES if (n := block.count(b'"record_type":"%s"' % kind.encode()))}

    def token(self, table: str) -> str:
        """A retried insert of this batch carries the same token and is dropped by ClickHouse.

        Offsets alone are not enough: a recreated topic starts its offsets again, so the
        content is part of the token too.
        """
        span = ",".join(f"{t}:{p}:{a}-{b}" for (t, p), (a, b) in sorted(self.offsets.items()))
        digest = hashlib.sha1(f"{table}|{span}".encode())
        if table == "history":
            for part in self.history:
                digest.update(part)
        else:
            for row in self.dead_letters:
                digest.update(str(row[0]).encode() + str(row[2]).encode())
        return digest.hexdigest()

    def commit_positions(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, last + 1) for (t, p), (_, last) in self.offsets.items()]


SAMPLE_EVERY = 16  # messages
SAMPLE_ROWS = 50
RECORD_TYPES = ("event", "transition", "notification", "alert", "estimate", "shipment", "delivery")
JSON_INSERT = {"date_time_input_format": "best_effort", "input_format_skip_unknown_fields": 1}


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def insert_history(client: Client, documents: bytes, token: str | None = None) -> None:
    """A JSON array of history records into ``history`` (and, through the views, the typed tables)."""
    settings: dict[str, Any] = dict(JSON_INSERT)
    if token:
        # The token also deduplicates the blocks the views derive from this insert.
        settings.update(insert_deduplication_token=token, deduplicate_blocks_in_dependent_materialized_views=1)
    client.raw_insert("history", column_names=None, insert_block=documents, fmt="JSONEachRow", settings=settings)


def batch_metrics(batch: Batch, written_at: datetime, seconds: float) -> list[tuple[Any, ...]]:
    """Pipeline health rows for one written batch: rows by type and how far behind the sink is."""
    rows: list[tuple[Any, ...]] = [(written_at, "sink", "rows_written", {"record_type": record_type}, float(count))
                                   for record_type, count in batch.rows_by_type().items()]
    if batch.dead_letters:
        rows.append((written_at, "sink", "rows_written", {"record_type": "dead_letter"},
                     float(len(batch.dead_letters))))
    lags = sorted((written_at - _time(d["ingested_at"])).total_seconds() for d in batch.samples if "ingested_at" in d)
    if lags:
        rows.append((written_at, "sink", "history_lag_seconds", {"quantile": "0.5"}, lags[len(lags) // 2]))
        rows.append((written_at, "sink", "history_lag_seconds", {"quantile": "1"}, lags[-1]))
    rows.append((written_at, "sink", "batch_seconds", {}, seconds))
    return rows


def dead_letter_row(message: Message) -> tuple[Any, ...]:
    headers = {k: (v or b"").decode(errors="replace") for k, v in (message.headers() or [])}
    _, timestamp_ms = message.timestamp()
    return (
        headers.get(topics.DLQ_TOPIC_HEADER, ""),
        int(headers.get(topics.DLQ_PARTITION_HEADER) or -1),
        int(headers.get(topics.DLQ_OFFSET_HEADER) or -1),
        headers.get(topics.DLQ_REASON_HEADER, "unknown"),
        headers.get(topics.DLQ_DETAIL_HEADER, ""),
        headers.get(topics.SOURCE_HEADER, ""),
        (message.key() or b"").decode(errors="replace"),
        (message.value() or b"").decode(errors="replace"),
        datetime.fromtimestamp(timestamp_ms / 1000, tz=timezone.utc),
    )


# Consumer groups whose lag the pipeline-health dashboard shows: the Faust worker (its app
# id), this sink and the reference notifier.
WATCHED_GROUPS = ("trackline", GROUP, "trackline-notifier")
LAG_EVERY_SECONDS = 10.0


def consumer_lag_rows(bootstrap: str, consumer: Any, at: datetime) -> list[tuple[Any, ...]]:
    """Messages each watched group has not committed yet, summed over its partitions.

    On the embedded broker the high watermark is the last batch's first offset + 1, so lag
    reads low by up to one batch per partition; on Kafka it is exact.
    """
    from confluent_kafka import ConsumerGroupTopicPartitions
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    rows: list[tuple[Any, ...]] = []
    for group in WATCHED_GROUPS:  # the client asks for one group at a time
        try:
            (future,) = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)]).values()
            committed = future.result(timeout=10).topic_partitions
        except Exception:  # a group that never committed: nothing to show yet
            continue
        lag = 0
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=5,
                                                      cached=False)
            lag += max(0, high - (tp.offset if tp.offset >= 0 else low))
        if committed:
            rows.append((at, "sink", "consumer_lag", {"group": group}, float(lag)))
    return rows


class SinkStopped(Exception):
    """Asked to stop while ClickHouse could not take rows; nothing was committed."""


class HistorySink:
    def __init__(self, bootstrap: str, dsn: str, on_connected: Any = None) -> None:
        self.bootstrap = bootstrap
        self.dsn = dsn
        self.stopping = Event()
        self.rows_written = 0
        # The client is shared with the read-only ops page (chDB: one engine per process).
        self.lock = Lock()
        self.on_connected = on_connected

    def run(self, max_idle: float | None = None) -> None:
        """Run until stopped (SIGTERM/SIGINT), or until ``max_idle`` seconds bring nothing."""
        try:
            self._run(max_idle)
        except SinkStopped as stopped:
            log.warning("%s", stopped)

    def _run(self, max_idle: float | None) -> None:
        client = self._connect_with_retry()
        consumer = clients.consumer(self.bootstrap, GROUP)
        consumer.subscribe([topics.HISTORY, topics.DLQ])
        batch = Batch()
        last_message = time.monotonic()
        last_lag = 0.0
        try:
            while not self.stopping.is_set():
                if time.monotonic() - last_lag >= LAG_EVERY_SECONDS:
                    last_lag = time.monotonic()
                    self._record_lag(client, consumer)
                for message in consumer.consume(BATCH_ROWS, timeout=0.2):
                    if message.error():
                        log.warning("consumer error: %s", message.error())
                        continue
                    batch.add(message)
                    last_message = time.monotonic()
                due = batch.offsets and (batch.rows >= BATCH_ROWS
                                         or time.monotonic() - batch.started >= BATCH_SECONDS)
                if due:
                    self._write(client, consumer, batch)
                    batch = Batch()
                if max_idle is not None and time.monotonic() - last_message > max_idle:
                    break
            if batch.offsets:
                self._write(client, consumer, batch)
        finally:
            consumer.close()

    def _record_lag(self, client: Client, consumer: Any) -> None:
        try:  # best effort, like every health figure
            rows = consumer_lag_rows(self.bootstrap, consumer, datetime.now(timezone.utc))
            if rows:
                with self.lock:
                    client.insert("pipeline_metrics", rows, column_names=METRIC_COLUMNS)
        except Exception as exc:
            log.warning("consumer lag not recorded: %s", exc)

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())

    def _connect_with_retry(self) -> Client:
        delay = 0.5
        while True:
            try:
                client = connect(self.dsn)
                migrate(client)
                if self.on_connected:
                    self.on_connected(client, self.lock)
                return client
            except Exception as exc:  # unreachable server: wait, never give up silently
                if self.stopping.is_set():
                    raise SinkStopped("stopped before ClickHouse was reachable") from exc
                log.warning("ClickHouse unreachable (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _write(self, client: Client, consumer: Any, batch: Batch) -> None:
        delay = 0.5
        paused = False
        started = time.monotonic()
        while True:
            try:
                with self.lock:
                    self._insert(client, batch)
                break
            except Exception as exc:
                if self.stopping.is_set():  # stop without committing: the rows come back on restart
                    raise SinkStopped("stopped while ClickHouse refused inserts") from exc
                log.warning("insert of %d rows failed (%s); retrying in %.1fs", batch.rows, exc, delay)
                if not paused:  # keep group membership while we wait, but read nothing new
                    consumer.pause(consumer.assignment())
                    paused = True
                consumer.poll(0)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        if paused:
            consumer.resume(consumer.assignment())
        try:  # health figures are best effort: never hold back the commit for them
            health = batch_metrics(batch, datetime.now(timezone.utc), time.monotonic() - started)
            with self.lock:
                client.insert("pipeline_metrics", health, column_names=METRIC_COLUMNS)
        except Exception as exc:
            log.warning("pipeline metrics not written: %s", exc)
        consumer.commit(offsets=batch.commit_positions(), asynchronous=False)
        self.rows_written += batch.rows
        log.debug("wrote %d rows", batch.rows)

    @staticmethod
    def _insert(client: Client, batch: Batch) -> None:
        if batch.history:
            insert_history(client, batch.history_json(), batch.token("history"))
        if batch.dead_letters:
            client.insert("dead_letters", batch.dead_letters, column_names=DEAD_LETTER_COLUMNS,
                          settings={"insert_deduplication_token": batch.token("dlq")})
