"""ClickHouse tables for trackline's history.

ReplacingMergeTree keyed by each row's deterministic id: a row written twice (a replay
after a crash, a retried insert) collapses to one, and queries that must be exact read
with FINAL. Inserts also carry a deduplication token so an identical retried batch is
dropped at once.
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

HISTORY_COLUMNS = [
    "record_id", "record_type", "order_id", "package_id", "event_id", "source", "carrier",
    "tracking_number", "status", "previous_status", "raw_code", "detail", "occurred_at",
    "ingested_at",
]
DEAD_LETTER_COLUMNS = [
    "source_topic", "source_partition", "source_offset", "reason", "detail", "source",
    "message_key", "payload", "dead_lettered_at",
]

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS history (
        record_id String,
        record_type LowCardinality(String),
        order_id String,
        package_id String,
        event_id String,
        source LowCardinality(String),
        carrier LowCardinality(String),
        tracking_number String,
        status LowCardinality(String),
        previous_status LowCardinality(String),
        raw_code String,
        detail String,
        occurred_at DateTime64(3, 'UTC'),
        ingested_at DateTime64(3, 'UTC'),
        written_at DateTime64(3, 'UTC') DEFAULT now64(3)
    )
    ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(occurred_at)
    ORDER BY (record_type, order_id, record_id)
    SETTINGS non_replicated_deduplication_window = 1000
    """,
    """
    CREATE TABLE IF NOT EXISTS dead_letters (
        source_topic LowCardinality(String),
        source_partition Int32,
        source_offset Int64,
        reason LowCardinality(String),
        detail String,
        source LowCardinality(String),
        message_key String,
        payload String,
        dead_lettered_at DateTime64(3, 'UTC'),
        written_at DateTime64(3, 'UTC') DEFAULT now64(3)
    )
    ENGINE = ReplacingMergeTree
    ORDER BY (source_topic, source_partition, source_offset)
    SETTINGS non_replicated_deduplication_window = 1000
    """,
]


def create_schema(client: Client) -> None:
    for statement in STATEMENTS:
        client.command(statement)
