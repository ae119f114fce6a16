"""History sink: ``trackline.history`` and ``trackline.dlq`` -> ClickHouse.

Batches rows (10,000 or one second, whichever first), inserts, and only then commits the
consumed offsets. If ClickHouse is down the sink pauses consumption and retries with
back-off, committing nothing, so a restart resumes exactly where rows stopped landing.

A row ClickHouse refuses (a value that does not parse or does not fit its column) is not an
outage: retrying cannot help, and holding the batch would stop the pipeline behind it. The
sink bisects the batch until it has the refused history documents, inserts the rest, stores
each refused document in ``dead_letters`` (reason ``rejected_by_clickhouse``, the error
text, the document's bytes) and commits. Only the error codes in ``ROW_ERROR_CODES`` mean
a refused row; every other failure is treated as an outage, so no row is ever dropped
because ClickHouse was unavailable.
"""

from __future__ import annotations

import hashlib
import logging
import re
import signal
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from threading import Event, Lock, Thread
from typing import Any

import clickhouse_connect
import orjson
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, scrub_error_details
from confluent_kafka import KafkaException, Message, TopicPartition

from broker import clients
from models import topics
from sinks.schema import DEAD_LETTER_COLUMNS, METRIC_COLUMNS, keep_dead_letter_payloads, migrate
from streams import failpoints
from trackline import metrics

log = logging.getLogger("trackline.sink")

BATCH_ROWS = 10_000
BATCH_SECONDS = 1.0
GROUP = "trackline-sink"
MAX_RETRY_WAIT = 30.0  # seconds between insert attempts while ClickHouse is down


def connect(dsn: str) -> Client:
    """``chdb:///path`` opens the embedded engine in this process; ``http(s)://`` a server."""
    if dsn.startswith("chdb://"):
        import importlib.util

        if importlib.util.find_spec("chdb") is None:
            raise RuntimeError("chDB, the embedded ClickHouse engine, is not installed (it comes with "
                               "trackline[embedded]): set TRACKLINE_CLICKHOUSE to your server's http(s):// URL")
    return clickhouse_connect.get_client(dsn=dsn)


@dataclass
class Batch:
    """History documents as the worker wrote them (JSON), dead-letter rows, and the offsets they span.

    History goes to ClickHouse as JSON (``JSONEachRow``, which reads a JSON array of
    objects): decoding and re-encoding rows in Python cost more than the insert itself.
    """

    history: list[bytes] = field(default_factory=list)  # JSON arrays' insides, one per message
    # Where each entry of ``history`` came from: (partition, offset, key, source header).
    origins: list[tuple[int, int, bytes, bytes]] = field(default_factory=list)
    history_rows: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)  # decoded rows, for lag figures
    dead_letters: list[tuple[Any, ...]] = field(default_factory=list)
    rejected: int = 0  # history documents ClickHouse refused, now in dead_letters
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
        raw = message.value() or b""
        value = raw.strip()
        if value.startswith(b"{"):
            value = b"[" + value + b"]"
        if not (value.startswith(b"[") and value.endswith(b"]")):
            # Only trackline writes this topic: a message that is not a JSON array is a bug
            # upstream. Kept, with its bytes, for the fix and a replay.
            log.error("history message %s[%d]@%d is not a JSON array: %r", message.topic(), message.partition(),
                      message.offset(), raw[:200])
            self.dead_letters.append(sink_dead_letter(
                message.topic(), message.partition(), message.offset(), "invalid_internal_event",
                "a history message must be a JSON array of records", _header(message, topics.SOURCE_HEADER),
                message.key() or b"", raw))
            metrics.DEAD_LETTERS.labels("invalid_internal_event", message.topic()).inc()
            return
        inside = value[1:-1].strip()
        if inside:
            self.history.append(inside)
            self.origins.append((message.partition(), message.offset(), message.key() or b"",
                                 _header(message, topics.SOURCE_HEADER)))
            self.history_rows += inside.count(b'"record_id"')
            if len(self.history) % SAMPLE_EVERY == 1:
                try:
                    self.samples.extend(d for d in orjson.loads(value)[:SAMPLE_ROWS] if isinstance(d, dict))
                except orjson.JSONDecodeError:  # ClickHouse will refuse it too: dead-lettered at insert
                    pass

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
    if batch.dead_letters or batch.rejected:
        rows.append((written_at, "sink", "rows_written", {"record_type": "dead_letter"},
                     float(len(batch.dead_letters) + batch.rejected)))
    lags = sorted((written_at - _time(d["ingested_at"])).total_seconds() for d in batch.samples if "ingested_at" in d)
    if lags:
        rows.append((written_at, "sink", "history_lag_seconds", {"quantile": "0.5"}, lags[len(lags) // 2]))
        rows.append((written_at, "sink", "history_lag_seconds", {"quantile": "1"}, lags[-1]))
    rows.append((written_at, "sink", "batch_seconds", {}, seconds))
    return rows


def _observe(batch: Batch, seconds: float) -> None:
    """The written batch in the Prometheus metrics (trackline.metrics)."""
    now = time.time()
    metrics.SINK_ROWS.labels("history").inc(batch.history_rows)
    metrics.SINK_ROWS.labels("dead_letters").inc(len(batch.dead_letters) + batch.rejected)
    metrics.SINK_LAST_WRITE.set(now)
    metrics.BATCH_SECONDS.labels("sink").observe(seconds)
    if batch.rejected:
        metrics.DEAD_LETTERS.labels("rejected_by_clickhouse", topics.HISTORY).inc(batch.rejected)
    for sample in batch.samples:
        if "ingested_at" in sample:
            metrics.SINK_HISTORY_LAG.observe(max(0.0, now - _time(sample["ingested_at"]).timestamp()))


REDACTED = "[redacted by trackline forget]"


def redact_customer(client: Client, customer_id: str) -> int:
    """Replace the original bytes of every dead letter that names ``customer_id`` (its key, its
    JSON ``customer_id``, or the id standing alone anywhere in the bytes, for payloads too broken
    to parse). The reason, detail and origin stay. Returns the number of rows redacted."""
    alone = r"(^|[^A-Za-z0-9_.@-])" + re.escape(customer_id) + r"($|[^A-Za-z0-9_.@-])"
    where = ("payload != {redacted:String} AND (message_key = {customer:String} "
             "OR JSONExtractString(payload, 'customer_id') = {customer:String} OR match(payload, {alone:String}))")
    parameters = {"redacted": REDACTED, "customer": customer_id, "alone": alone}
    found = int(client.query(f"SELECT count() FROM dead_letters FINAL WHERE {where}",
                             parameters=parameters).result_rows[0][0])
    if found:  # synchronous: when `trackline forget` answers, the bytes are gone
        client.command(f"ALTER TABLE dead_letters UPDATE payload = {{redacted:String}} WHERE {where}",
                       parameters=parameters, settings={"mutations_sync": 2})
    return found


def payload_hash(payload: bytes) -> int:
    """Part of ``dead_letters``' key: several payloads dead-lettered from one offset stay apart."""
    return int.from_bytes(hashlib.sha1(payload).digest()[:8], "big")


def _header(message: Message, name: str) -> bytes:
    for key, value in message.headers() or ():
        if key == name:
            return value or b""
    return b""


def _int(text: str | None, default: int = -1) -> int:
    try:
        return int(text or default)
    except ValueError:  # a header we cannot read must not stop the sink
        return default


def sink_dead_letter(topic: str, partition: int, offset: int, reason: str, detail: str, source: bytes,
                     key: bytes, payload: bytes) -> tuple[Any, ...]:
    """A ``dead_letters`` row for a record the sink itself could not store; the payload is its bytes."""
    return (topic, partition, offset, reason, detail[:1000], source.decode(errors="replace"),
            key.decode(errors="replace"), payload, datetime.now(timezone.utc), payload_hash(payload), {}, None)


def dead_letter_row(message: Message) -> tuple[Any, ...]:
    headers = {k: (v or b"").decode(errors="replace") for k, v in (message.headers() or [])}
    _, timestamp_ms = message.timestamp()
    payload = message.value() or b""
    return (
        headers.get(topics.DLQ_TOPIC_HEADER, ""),
        _int(headers.get(topics.DLQ_PARTITION_HEADER)),
        _int(headers.get(topics.DLQ_OFFSET_HEADER)),
        headers.get(topics.DLQ_REASON_HEADER, "unknown"),
        headers.get(topics.DLQ_DETAIL_HEADER, ""),
        headers.get(topics.SOURCE_HEADER, ""),
        (message.key() or b"").decode(errors="replace"),
        payload,  # the original bytes, untouched
        datetime.fromtimestamp(timestamp_ms / 1000, tz=timezone.utc),
        payload_hash(payload),
        # The record's own headers (trackline-source among them), for replay.
        {k: v for k, v in headers.items() if not k.startswith("trackline-dlq-")},
        datetime.fromtimestamp(received / 1000, tz=timezone.utc)
        if (received := _int(headers.get(topics.DLQ_RECEIVED_AT_HEADER))) > 0 else None,
    )


# ClickHouse error codes that mean "these rows cannot be stored", whatever the server's state:
# a value that does not parse or does not fit its column, or JSON that breaks the
# JSONEachRow parse. Seen from chDB here: 41 for an occurred_at like "not-a-time", 117 for
# broken JSON, 27 for a row that is not an object or a map that is not one, 407 and 69 for a
# time out of DateTime64's range. Every other failure (no connection or a timeout, which
# carry no code; UNKNOWN_TABLE while a table is detached; memory limits, too many parts,
# read-only disks, ...) is an outage: retried, never dropped.
ROW_ERROR_CODES = frozenset({
    6,  # CANNOT_PARSE_TEXT
    25,  # CANNOT_PARSE_ESCAPE_SEQUENCE
    26,  # CANNOT_PARSE_QUOTED_STRING
    27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,  # CANNOT_PARSE_DATE
    41,  # CANNOT_PARSE_DATETIME
    53,  # TYPE_MISMATCH
    69,  # ARGUMENT_OUT_OF_BOUND
    70,  # CANNOT_CONVERT_TYPE
    72,  # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    130,  # CANNOT_READ_ARRAY_FROM_TEXT
    131,  # TOO_LARGE_STRING_SIZE
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    407,  # DECIMAL_OVERFLOW
})


def is_rejected_row(exc: BaseException) -> bool:
    """ClickHouse refused the data itself (retrying the same rows fails the same way).

    clickhouse-connect raises ``DatabaseError`` with the server's ``code`` for an error
    ClickHouse returned (the chDB backend and HTTP alike; ``OperationalError``, a subclass,
    when the HTTP client had retried), and ``OperationalError`` without a code for transport
    failures. Only a known data-error code counts; anything else is an outage.
    """
    return isinstance(exc, DatabaseError) and exc.code in ROW_ERROR_CODES


_TEMP_FILE = re.compile(r"\s*\(in file/uri [^)]*\):?")
_REPEATED_CODE = re.compile(r"^(Code: \d+\. DB::Exception: )\1")


def rejection_detail(exc: BaseException) -> str:
    """ClickHouse's error text, without the temporary file name and version trailer."""
    text = _REPEATED_CODE.sub(r"\1", _TEMP_FILE.sub("", str(exc)))
    return scrub_error_details(text)[:1000]


def split_documents(inside: bytes) -> list[bytes] | None:
    """The documents of a JSON array's inside, each as its original bytes; None if unbalanced."""
    documents: list[bytes] = []
    depth, start, in_string, escaped = 0, 0, False, False
    for i, char in enumerate(inside):
        if in_string:
            if escaped:
                escaped = False
            elif char == 0x5C:  # backslash
                escaped = True
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x7B, 0x5B):
            depth += 1
        elif char in (0x7D, 0x5D):
            depth -= 1
            if depth < 0:
                return None
        elif char == 0x2C and depth == 0:
            documents.append(inside[start:i].strip())
            start = i + 1
    if depth or in_string:
        return None
    documents.append(inside[start:].strip())
    return documents if all(documents) else None


@dataclass
class Piece:
    """A history message's documents (``document`` < 0), or one document of it, to insert."""

    body: bytes
    origin: int  # index into Batch.history / Batch.origins
    document: int = -1


def piece_token(batch_token: str, label: str, pieces: list[Piece]) -> str:
    """Deterministic for the same batch: a replayed bisection is deduplicated piece by piece."""
    digest = hashlib.sha1(f"{batch_token}|{label}|".encode())
    for piece in pieces:
        digest.update(piece.body)
    return digest.hexdigest()


def insert_isolating(client: Client, pieces: list[Piece], batch_token: str, label: str = "",
                     known_bad: bool = False) -> list[tuple[Piece, BaseException]]:
    """Insert ``pieces``, bisecting around the documents ClickHouse refuses; returns those.

    A refused piece is split in halves, each inserted on its own (the refused half split
    again), down to one message, then to its documents, then to the one document. After a
    good first half the second is known to fail and is split at once. An outage raises.
    """
    if not known_bad or len(pieces) == 1:
        try:
            insert_history(client, b"[" + b",".join(p.body for p in pieces) + b"]",
                           piece_token(batch_token, label, pieces))
            return []
        except Exception as exc:
            if not is_rejected_row(exc):
                raise
            if len(pieces) == 1:
                piece = pieces[0]
                documents = split_documents(piece.body) if piece.document < 0 else None
                if not documents or len(documents) == 1:
                    return [(piece, exc)]
                return insert_isolating(client, [Piece(d, piece.origin, i) for i, d in enumerate(documents)],
                                        batch_token, f"{label}/{piece.origin}", known_bad=True)
    middle = len(pieces) // 2
    refused = insert_isolating(client, pieces[:middle], batch_token, f"{label}.0")
    return refused + insert_isolating(client, pieces[middle:], batch_token, f"{label}.1", known_bad=not refused)


# Consumer groups whose lag the pipeline-health dashboard shows: the Faust worker (its app
# id), this sink and the reference notifier.
WATCHED_GROUPS = ("trackline", GROUP, "trackline-notifier")
LAG_EVERY_SECONDS = 10.0


def consumer_lag_rows(bootstrap: str, consumer: Any, at: datetime) -> list[tuple[Any, ...]]:
    """Messages each watched group has not committed yet, summed over its partitions
    (broker.clients.unread: on the embedded broker it reads low by up to a batch each)."""
    rows: list[tuple[Any, ...]] = []
    for group in WATCHED_GROUPS:  # the client asks for one group at a time
        try:
            committed = clients.committed_offsets(bootstrap, group)
        except Exception:  # a group that never committed: nothing to show yet
            continue
        if committed:
            rows.append((at, "sink", "consumer_lag", {"group": group},
                         float(clients.unread(consumer, committed, committed))))
    return rows


class SinkStopped(Exception):
    """Asked to stop while ClickHouse could not take rows; nothing was committed."""


class HistorySink:
    def __init__(self, bootstrap: str, dsn: str, on_connected: Any = None, dlq_payload_days: int = 30) -> None:
        self.bootstrap = bootstrap
        self.dsn = dsn
        self.dlq_payload_days = dlq_payload_days
        self.stopping = Event()
        self.rows_written = 0  # committed: in ClickHouse
        self.messages_read = 0  # taken from the broker, committed or not
        # What an outage looks like from outside: failed inserts, the waits between them,
        # and whether reading is paused (nothing new is read while rows cannot land).
        self.failed_inserts = 0
        self.retry_waits: list[float] = []
        self.paused = False
        self._held: list[Message] = []  # read by a poll while paused: first in the next batch
        # The client is shared with the read-only ops page (chDB: one engine per process).
        self.lock = Lock()
        self.on_connected = on_connected
        self._lag_done = Event()  # the loop has ended: the lag thread stops too

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Run until stopped (SIGTERM/SIGINT), or until ``until()`` is true after a commit."""
        try:
            self._run(until)
        except SinkStopped as stopped:
            log.warning("%s", stopped)

    def _run(self, until: Callable[[], bool] | None) -> None:
        client = self._connect_with_retry()
        metrics.SINK_LAST_WRITE.set(time.time())  # "stopped" counts from here until the first write
        consumer = clients.consumer(self.bootstrap, GROUP)
        consumer.subscribe([topics.HISTORY, topics.DLQ])
        batch = Batch()
        # Lag is probed beside the loop: on the embedded broker one probe takes ~0.5 s, and
        # inline it held a batch back that long every 10 s (the history lag's p99).
        self._lag_done.clear()
        lag = Thread(target=self._record_lag, args=(client,), name="sink-lag", daemon=True)
        lag.start()
        try:
            while not self.stopping.is_set():
                held, self._held = self._held, []
                read = consumer.consume(BATCH_ROWS, timeout=0.2)
                self.messages_read += len(read)
                for topic, count in Tally(m.topic() or "-" for m in read).items():
                    metrics.EVENTS_IN.labels(topic, "-").inc(count)
                for message in held + read:
                    if message.error():
                        log.warning("consumer error: %s", message.error())
                        continue
                    batch.add(message)
                due = batch.offsets and (batch.rows >= BATCH_ROWS
                                         or time.monotonic() - batch.started >= BATCH_SECONDS)
                if due:
                    self._write(client, consumer, batch)
                    batch = Batch()
                if until is not None and not batch.offsets and until():
                    break
            if batch.offsets:
                self._write(client, consumer, batch)
        finally:
            self._lag_done.set()
            lag.join(timeout=10)
            consumer.close()

    def _record_lag(self, client: Client) -> None:
        """Every LAG_EVERY_SECONDS until the loop ends: the watched groups' lag as rows."""
        reader = clients.consumer(self.bootstrap, f"{GROUP}-lag", log_level=0)  # watermarks only
        try:
            while not self._lag_done.is_set():
                try:  # best effort, like every health figure
                    rows = consumer_lag_rows(self.bootstrap, reader, datetime.now(timezone.utc))
                    if rows:
                        with self.lock:
                            client.insert("pipeline_metrics", rows, column_names=METRIC_COLUMNS)
                except Exception as exc:
                    log.warning("consumer lag not recorded: %s", exc)
                self._lag_done.wait(LAG_EVERY_SECONDS)
        finally:
            reader.close()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())

    def _connect_with_retry(self) -> Client:
        delay = 0.5
        while True:
            try:
                client = connect(self.dsn)
                migrate(client)
                if keep_dead_letter_payloads(client, self.dlq_payload_days):
                    log.info("dead letters keep their payloads %d days", self.dlq_payload_days)
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
        started = time.monotonic()
        while True:
            try:
                with self.lock:
                    self._insert(client, batch)
                break
            except Exception as exc:
                self.failed_inserts += 1
                metrics.SINK_INSERT_FAILURES.inc()
                if self.stopping.is_set():  # stop without committing: the rows come back on restart
                    raise SinkStopped("stopped while ClickHouse refused inserts") from exc
                log.warning("insert of %d rows failed (%s); retrying in %.1fs", batch.rows, exc, delay)
                if not self.paused:  # keep group membership while we wait, but read nothing new
                    consumer.pause(consumer.assignment())
                    self.paused = True
                self.retry_waits.append(delay)
                self._wait(consumer, delay)
                delay = min(delay * 2, MAX_RETRY_WAIT)
        if self.paused:
            consumer.resume(consumer.assignment())
            self.paused = False
        try:  # health figures are best effort: never hold back the commit for them
            health = batch_metrics(batch, datetime.now(timezone.utc), time.monotonic() - started)
            with self.lock:
                client.insert("pipeline_metrics", health, column_names=METRIC_COLUMNS)
        except Exception as exc:
            log.warning("pipeline metrics not written: %s", exc)
        failpoints.kill_if("sink_kill_after_insert")  # in ClickHouse, offsets not committed
        try:
            consumer.commit(offsets=batch.commit_positions(), asynchronous=False)
        except KafkaException as error:
            # A rebalance or a dropped connection: the rows are in ClickHouse. Whoever reads
            # them again inserts them with the same tokens, which ClickHouse drops as repeats.
            log.warning("offsets of %d rows not committed (%s); they will be read again", batch.rows, error)
        self.rows_written += batch.rows
        _observe(batch, time.monotonic() - started)
        log.debug("wrote %d rows", batch.rows)

    def _wait(self, consumer: Any, seconds: float) -> None:
        """Wait out a back-off step, polling so the group keeps this member.

        A partition assigned by a rebalance during the wait is not paused; whatever a poll
        reads from it is held for the next batch, never dropped.
        """
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            message = consumer.poll(min(left, 0.5))
            if message is not None:
                self.messages_read += 1
                self._held.append(message)

    @staticmethod
    def _insert(client: Client, batch: Batch) -> None:
        """Everything in ``batch`` into ClickHouse, refused history documents as dead letters.

        Raises on an outage; a retry repeats the same inserts with the same tokens.
        """
        if failpoints.hit("clickhouse_unavailable"):
            raise ConnectionRefusedError("failpoint clickhouse_unavailable: ClickHouse refused the connection")
        refused: list[tuple[Piece, BaseException]] = []
        if batch.history:
            token = batch.token("history")
            pieces = [Piece(body, i) for i, body in enumerate(batch.history)]
            refused = insert_isolating(client, pieces, token)
        rejected_rows = []
        for piece, exc in refused:
            partition, offset, key, source = batch.origins[piece.origin]
            log.error("ClickHouse refused a history document from %s[%d]@%d: %s", topics.HISTORY, partition,
                      offset, exc)
            rejected_rows.append(sink_dead_letter(topics.HISTORY, partition, offset, "rejected_by_clickhouse",
                                                  rejection_detail(exc), source, key, piece.body))
        batch.rejected = len(rejected_rows)
        dead_letters = batch.dead_letters + rejected_rows
        if dead_letters:
            token = batch.token("dlq")
            if refused:
                positions = ",".join(f"{p.origin}:{p.document}" for p, _ in refused)
                token = hashlib.sha1(f"{token}|refused|{positions}".encode()).hexdigest()
            client.insert("dead_letters", dead_letters, column_names=DEAD_LETTER_COLUMNS,
                          settings={"insert_deduplication_token": token})
