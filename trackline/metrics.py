"""Prometheus metrics of every trackline process (prometheus-client's default registry).

Each metric is defined here once, so the names the alert rules and the Prometheus dashboard
use have one home (``tests/integration/test_metrics.py`` checks that every name the rules
and dashboard query is one a process exposes). Labels carry topics, sources, reasons,
channels and partitions: never an order, customer or tracking number.

The worker serves ``/metrics`` on its web port (Faust's web server); the sink, the notifier
and the ingest service on ``TRACKLINE_METRICS_PORT`` (off when 0).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest, start_http_server

log = logging.getLogger("trackline.metrics")

# Batches take from a millisecond (a few scans) to seconds (a backlog, a broker retry).
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

EVENTS_IN = Counter("trackline_events_in", "Records a process took from a topic (or the ingest service took "
                    "over HTTP), by topic and source (the trackline-source header; '-' when absent)",
                    ["topic", "source"])
DEAD_LETTERS = Counter("trackline_dead_letters", "Records sent to the dead-letter topic (or table), by reason "
                       "and the topic they came from", ["reason", "topic"])
BATCH_SECONDS = Histogram("trackline_batch_seconds", "Time to process one fetched batch, end to end "
                          "(sends confirmed, state stored), by stage", ["stage"], buckets=BATCH_BUCKETS)
LAG_RECORDS = Gauge("trackline_consumer_lag_records", "Records past the group's committed offset "
                    "(on the embedded broker the high watermark reads low by up to one batch)",
                    ["group", "topic", "partition"])
LAG_SECONDS = Gauge("trackline_consumer_lag_seconds", "Age of the oldest record the group has not committed "
                    "(0 when nothing is unread)", ["group", "topic", "partition"])
LAG_PROBE_FAILURES = Counter("trackline_consumer_lag_probe_failures", "Lag probes that could not ask the broker",
                             ["group"])
SINK_ROWS = Counter("trackline_sink_rows", "Rows the sink wrote to ClickHouse (offsets committed after)", ["table"])
SINK_INSERT_FAILURES = Counter("trackline_sink_insert_failures", "Inserts ClickHouse refused or could not "
                               "take (each retried)")
SINK_HISTORY_LAG = Histogram("trackline_sink_history_lag_seconds", "From a history record's ingest time to its "
                             "row written in ClickHouse", buckets=LAG_BUCKETS)
SINK_LAST_WRITE = Gauge("trackline_sink_last_write_timestamp_seconds", "When the sink last wrote a batch "
                        "(Unix time)")
NOTIFIER_OUTCOMES = Counter("trackline_notifier_outcomes", "What the notifier did with each (command, channel): "
                            "sent, failed, held, retrying, ...", ["channel", "outcome"])
INGEST_REQUESTS = Counter("trackline_ingest_requests", "Requests the ingest service answered, by source and "
                          "HTTP status", ["source", "status"])
DEADLINE_INDEX_SIZE = Gauge("trackline_deadline_index_size", "Deadlines this worker keeps in memory for the "
                            "partitions it owns", ["index"])
DEADLINE_DUE = Gauge("trackline_deadline_due", "Deadlines found due at the last tick", ["index"])
DEADLINE_TICKS = Counter("trackline_deadline_ticks", "Deadlines found due (each sends a tick)", ["index"])


# The CPU stages count the event loop thread's CPU time (time.thread_time: not the waits for
# the GIL while the consumer thread holds it, which wall time would add); produce and flush_wait
# are wall time (they await the producer).
STAGE_SECONDS = Counter("trackline_stage_seconds", "Time the worker spent in each stage of its batches: "
                        "CPU time of the event loop's thread, except produce and flush_wait (wall time; "
                        "flush_wait: waiting for the broker's acknowledgements, the loop free meanwhile)",
                        ["stage"])
# The stages `make bench` breaks a scan's cost into (per scan: the delta over the scans processed).
STAGES = ("parse", "route", "order_decode", "state_decode", "apply", "state_encode", "effect_encode", "policy",
          "produce", "flush_wait")
STAGE = {name: STAGE_SECONDS.labels(name) for name in STAGES}


def count_in(topic: str, records: Iterable[Any], source_header: str) -> None:
    """Count consumed records by their source header (aiokafka or confluent-kafka records)."""
    tally: Tally[str] = Tally()
    for record in records:
        headers = record.headers() if callable(getattr(record, "headers", None)) else record.headers
        source = "-"
        for key, value in headers or ():
            if key == source_header:
                source = bytes(value).decode(errors="replace") if value is not None else "-"
                break
        tally[source] += 1
    for source, count in tally.items():
        EVENTS_IN.labels(topic, source).inc(count)


def exposition() -> tuple[bytes, str]:
    """The body and content type of a scrape: the Prometheus text format."""
    return generate_latest(), CONTENT_TYPE_LATEST


def serve(port: int, bind: str) -> None:
    """``/metrics`` on its own port, in a thread (the sink and the notifier have no web server)."""
    if port:
        start_http_server(port, addr=bind)
        log.info("metrics on http://%s:%s/metrics", bind, port)


class LagProbe(threading.Thread):
    """Every ``interval`` seconds: each group's lag per partition, in records and in seconds.

    The seconds are the age of the oldest unread record, read from the broker at the
    committed offset: Faust's own monitor sees one event per fetched batch and undercounts.
    Several processes of one group each report the whole group; dashboards take the max.
    """

    def __init__(self, bootstrap: str, groups: list[str], interval: float = 15.0) -> None:
        super().__init__(name="lag-probe", daemon=True)
        self.bootstrap = bootstrap
        self.groups = groups
        self.interval = interval
        self.stopping = threading.Event()

    def run(self) -> None:
        from broker import clients

        reader = clients.consumer(self.bootstrap, "trackline-lag-probe", log_level=0)
        try:
            while not self.stopping.is_set():
                for group in self.groups:
                    try:
                        self.probe(reader, group)
                    except Exception as error:  # a group not formed yet, the broker away: try next round
                        LAG_PROBE_FAILURES.labels(group).inc()
                        log.debug("lag of %s not probed: %s", group, error)
                self.stopping.wait(self.interval)
        finally:
            reader.close()

    def probe(self, reader: Any, group: str) -> None:
        from confluent_kafka import TopicPartition

        from broker import clients

        committed = clients.committed_offsets(self.bootstrap, group)
        behind: dict[tuple[str, int], int] = {}
        for (topic, partition), offset in committed.items():
            low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=5, cached=False)
            start = offset if offset >= 0 else low
            lag = max(0, high - start)
            LAG_RECORDS.labels(group, topic, str(partition)).set(lag)
            if lag:
                behind[(topic, partition)] = start
            else:
                LAG_SECONDS.labels(group, topic, str(partition)).set(0)
        if not behind:
            return
        # The oldest unread record of each partition behind: one read at its committed offset.
        reader.assign([TopicPartition(t, p, o) for (t, p), o in behind.items()])
        deadline = time.monotonic() + 5.0
        try:
            while behind and time.monotonic() < deadline:
                message = reader.poll(0.5)
                if message is None or message.error():
                    continue
                key = (message.topic(), message.partition())
                if key in behind:
                    del behind[key]
                    _, stamp = message.timestamp()
                    age = max(0.0, time.time() - stamp / 1000) if stamp > 0 else 0.0
                    LAG_SECONDS.labels(group, key[0], str(key[1])).set(age)
        finally:
            reader.unassign()
