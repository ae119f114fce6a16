"""trackline's ClickHouse schema as versioned migrations: ``trackline migrate`` (and the sink
at start-up) applies the ones a database has not seen, in order, and records each in
``schema_migrations``. Every statement is idempotent (IF NOT EXISTS), so two sinks starting
together, or a migration interrupted half-way, converge on the same schema.

How the tables are laid out, and why:

- ``history`` is the one table the sink writes: every record the pipeline produces (events,
  transitions, alerts, estimates, shipment facts, notification decisions, deliveries), one
  row each, with typed facts in ``attributes``. ReplacingMergeTree keyed by the row's
  deterministic id: a row written twice (a replay after a crash, a retried insert) collapses
  to one; exact queries read with FINAL. Inserts carry a deduplication token, so an identical
  retried batch is dropped at once (and, with ``deduplicate_blocks_in_dependent_materialized_views``,
  in the views below too).
- Materialized views route each record type into its own table, typed and ordered for the
  dashboards' queries, so no dashboard scans ``history``. Each target is a
  ReplacingMergeTree on the same deterministic id (a row that reaches a view twice is still
  one row under FINAL), partitioned by month of event time so TTL drops whole parts.
- TTLs: raw carrier events 400 days (a year of seasonality plus a month), transitions,
  alerts and notifications 2 years (disputes and chargebacks), estimates and shipments 2
  years (carrier reviews), pipeline metrics 30 days, dead letters 90 days (enough to replay).
- A dead letter's original bytes (``payload``) are kept ``TRACKLINE_DLQ_PAYLOAD_DAYS`` (30 by
  default, a column TTL set by the sink at start-up), the row 90 days.
- ``dead_letters`` is keyed by source topic, partition, offset and the payload's hash: one
  row per dead-lettered payload, so a replayed dead letter collapses but two bad documents
  of one message do not.
- No table holds a customer's e-mail address or phone number: customers appear by id only;
  notification workers resolve contacts outside trackline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

DEAD_LETTER_COLUMNS = [
    "source_topic", "source_partition", "source_offset", "reason", "detail", "source",
    "message_key", "payload", "dead_lettered_at", "payload_hash", "original_headers", "received_at",
]
METRIC_COLUMNS = ["at", "process", "metric", "labels", "value"]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def _view(name: str, target: str, select: str) -> str:
    return f"CREATE MATERIALIZED VIEW IF NOT EXISTS {name} TO {target} AS {select}"


def _ts(key: str) -> str:
    """A time from ``attributes`` (ISO 8601), or NULL when the record does not carry it."""
    return f"parseDateTime64BestEffortOrNull(attributes['{key}'], 3, 'UTC')"


def _day(key: str) -> str:
    return f"toDateOrNull(attributes['{key}'])"


_SHIPMENTS_SELECT = (
    "SELECT order_id, package_id, status AS milestone, carrier, attributes['service_level'] AS "
    "service_level, attributes['seller_id'] AS seller_id, attributes['fulfillment_center'] AS "
    "fulfillment_center, attributes['delivery_time_zone'] AS delivery_time_zone, "
    f"{_ts('placed_at')} AS placed_at, {_ts('ship_by')} AS ship_by, {_ts('shipped_at')} AS shipped_at, "
    f"{_ts('accepted_at')} AS accepted_at, {_ts('first_attempt_at')} AS first_attempt_at, "
    f"{_ts('delivered_at')} AS delivered_at, {_day('first_attempt_date')} AS first_attempt_date, "
    f"{_day('delivered_date')} AS delivered_date, {_day('promised')} AS promised, "
    f"{_day('carrier_original_estimate')} AS carrier_original_estimate, ingested_at "
    "FROM history WHERE record_type = 'shipment'")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "history and dead letters", (
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
    )),
    Migration(2, "typed tables fed by views, pipeline metrics, retention", (
        "ALTER TABLE history ADD COLUMN IF NOT EXISTS attributes Map(String, String) AFTER ingested_at",
        "ALTER TABLE dead_letters MODIFY TTL toDateTime(dead_lettered_at) + INTERVAL 90 DAY",
        # Carrier events: the canonical status beside the carrier's raw code; ops group by
        # carrier and time, support by tracking number.
        """
        CREATE TABLE IF NOT EXISTS carrier_events (
            record_id String, order_id String, package_id String, source LowCardinality(String),
            carrier LowCardinality(String), tracking_number String, status LowCardinality(String),
            raw_code String, message String, occurred_at DateTime64(3, 'UTC'), ingested_at DateTime64(3, 'UTC')
        )
        ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMM(occurred_at)
        ORDER BY (carrier, toDate(occurred_at), record_id)
        TTL toDateTime(occurred_at) + INTERVAL 400 DAY
        """,
        _view("carrier_events_mv", "carrier_events",
              "SELECT record_id, order_id, package_id, source, carrier, tracking_number, status, raw_code, "
              "detail AS message, occurred_at, ingested_at FROM history "
              "WHERE record_type = 'event' AND source != 'fulfillment'"),
        # Order and package status transitions: "status now" is the latest per order/package.
        """
        CREATE TABLE IF NOT EXISTS status_transitions (
            record_id String, order_id String, package_id String, status LowCardinality(String),
            previous_status LowCardinality(String), occurred_at DateTime64(3, 'UTC'),
            ingested_at DateTime64(3, 'UTC')
        )
        ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMM(occurred_at)
        ORDER BY (order_id, package_id, record_id)
        TTL toDateTime(occurred_at) + INTERVAL 2 YEAR
        """,
        _view("status_transitions_mv", "status_transitions",
              "SELECT record_id, order_id, package_id, status, previous_status, occurred_at, ingested_at "
              "FROM history WHERE record_type = 'transition'"),
        # Alerts: one row per opening and per closing; "open now" is the latest state per alert.
        """
        CREATE TABLE IF NOT EXISTS alerts (
            record_id String, alert_id String, kind LowCardinality(String), state LowCardinality(String),
            order_id String, package_id String, carrier LowCardinality(String),
            service_level LowCardinality(String), seller_id LowCardinality(String),
            fulfillment_center LowCardinality(String), detail String, due_at Nullable(DateTime64(3, 'UTC')),
            at DateTime64(3, 'UTC')
        )
        ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMM(at)
        ORDER BY (kind, alert_id, state)
        TTL toDateTime(at) + INTERVAL 2 YEAR
        """,
        _view("alerts_mv", "alerts",
              "SELECT record_id, event_id AS alert_id, status AS kind, previous_status AS state, order_id, "
              "package_id, carrier, attributes['service_level'] AS service_level, attributes['seller_id'] AS "
              f"seller_id, attributes['fulfillment_center'] AS fulfillment_center, detail, {_ts('due_at')} AS "
              "due_at, ingested_at AS at FROM history WHERE record_type = 'alert'"),
        # Notification decisions (queued, deferred, suppressed) and what notifiers did.
        """
        CREATE TABLE IF NOT EXISTS notifications (
            record_id String, command_id String, type LowCardinality(String), order_id String,
            package_id String, customer_id String, channels LowCardinality(String),
            outcome LowCardinality(String), send_after Nullable(DateTime64(3, 'UTC')),
            occurred_at DateTime64(3, 'UTC'), caused_by_ingested_at DateTime64(3, 'UTC'),
            decided_at Nullable(DateTime64(3, 'UTC'))
        )
        ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMM(occurred_at)
        ORDER BY (type, command_id)
        TTL toDateTime(occurred_at) + INTERVAL 2 YEAR
        """,
        _view("notifications_mv", "notifications",
              "SELECT record_id, event_id AS command_id, status AS type, order_id, package_id, "
              "attributes['customer_id'] AS customer_id, source AS channels, attributes['outcome'] AS outcome, "
              f"{_ts('send_after')} AS send_after, occurred_at, ingested_at AS caused_by_ingested_at, "
              f"{_ts('decided_at')} AS decided_at FROM history WHERE record_type = 'notification'"),
        """
        CREATE TABLE IF NOT EXISTS notification_deliveries (
            record_id String, command_id String, type LowCardinality(String), order_id String,
            channels LowCardinality(String), outcome LowCardinality(String),
            caused_by_ingested_at Nullable(DateTime64(3, 'UTC')), delivered_at DateTime64(3, 'UTC')
        )
        ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMM(delivered_at)
        ORDER BY (type, command_id, outcome)
        TTL toDateTime(delivered_at) + INTERVAL 2 YEAR
        """,
        _view("notification_deliveries_mv", "notification_deliveries",
              "SELECT record_id, event_id AS command_id, status AS type, order_id, source AS channels, "
              f"detail AS outcome, {_ts('caused_by_ingested_at')} AS caused_by_ingested_at, "
              "ingested_at AS delivered_at FROM history WHERE record_type = 'delivery'"),
        # Our estimate over time, beside the promise and the carrier's original and current.
        """
        CREATE TABLE IF NOT EXISTS delivery_estimates (
            record_id String, order_id String, package_id String, carrier LowCardinality(String),
            source LowCardinality(String), estimate Nullable(Date), previous Nullable(Date),
            promised Nullable(Date), carrier_original Nullable(Date), carrier_current Nullable(Date),
            occurred_at DateTime64(3, 'UTC'), ingested_at DateTime64(3, 'UTC')
        )
        ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMM(occurred_at)
        ORDER BY (order_id, package_id, record_id)
        TTL toDateTime(occurred_at) + INTERVAL 2 YEAR
        """,
        _view("delivery_estimates_mv", "delivery_estimates",
              f"SELECT record_id, order_id, package_id, carrier, status AS source, {_day('estimate')} AS estimate, "
              f"{_day('previous')} AS previous, {_day('promised')} AS promised, {_day('carrier_original')} AS "
              f"carrier_original, {_day('carrier_current')} AS carrier_current, occurred_at, ingested_at "
              "FROM history WHERE record_type = 'estimate'"),
        # One row per package: shipped, then replaced by its delivered version (the version
        # column is the milestone's ingest time), for carrier and seller performance.
        """
        CREATE TABLE IF NOT EXISTS shipments (
            order_id String, package_id String, milestone LowCardinality(String),
            carrier LowCardinality(String), service_level LowCardinality(String),
            seller_id LowCardinality(String), fulfillment_center LowCardinality(String),
            delivery_time_zone LowCardinality(String), placed_at Nullable(DateTime64(3, 'UTC')),
            ship_by Nullable(DateTime64(3, 'UTC')), shipped_at Nullable(DateTime64(3, 'UTC')),
            accepted_at Nullable(DateTime64(3, 'UTC')), first_attempt_at Nullable(DateTime64(3, 'UTC')),
            delivered_at Nullable(DateTime64(3, 'UTC')), first_attempt_date Nullable(Date),
            delivered_date Nullable(Date), promised Nullable(Date),
            carrier_original_estimate Nullable(Date), ingested_at DateTime64(3, 'UTC')
        )
        ENGINE = ReplacingMergeTree(ingested_at)
        ORDER BY (seller_id, order_id, package_id)
        TTL toDateTime(ingested_at) + INTERVAL 2 YEAR
        """,
        _view("shipments_mv", "shipments", _SHIPMENTS_SELECT),
        # Pipeline health, written by the sink itself (rows, lag) every batch.
        """
        CREATE TABLE IF NOT EXISTS pipeline_metrics (
            at DateTime64(3, 'UTC'), process LowCardinality(String), metric LowCardinality(String),
            labels Map(String, String), value Float64
        )
        ENGINE = MergeTree
        PARTITION BY toYYYYMMDD(at)
        ORDER BY (metric, at)
        TTL toDateTime(at) + INTERVAL 30 DAY
        """,
    )),
    # Several records can be dead-lettered from one source offset (two bad documents of one
    # history message, several scans of one X12 interchange): keyed by offset alone, they
    # collapsed into one under FINAL. The payload's hash tells them apart, and a replayed
    # dead letter (same offset, same bytes) still collapses. A new sorting-key column cannot
    # have a default expression: writers compute it (``sinks.clickhouse.payload_hash``).
    Migration(3, "dead letters keyed by payload too", (
        "ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS payload_hash UInt64, "
        "MODIFY ORDER BY (source_topic, source_partition, source_offset, payload_hash)",
    )),
    # A retried insert carries the same token, and the views pass it on: each view's table
    # needs a window of remembered blocks too, or the retry counts twice without FINAL.
    Migration(4, "deduplication window on every view table", tuple(
        f"ALTER TABLE {table} MODIFY SETTING non_replicated_deduplication_window = 1000"
        for table in ("carrier_events", "status_transitions", "alerts", "notifications",
                      "notification_deliveries", "delivery_estimates", "shipments"))),
    # What `trackline replay` needs to send a dead letter again as it first arrived: the
    # record's own headers and its timestamp (the receipt time the stream's clock reads).
    Migration(5, "dead letters keep the original headers and receipt time", (
        "ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS original_headers Map(String, String), "
        "ADD COLUMN IF NOT EXISTS received_at Nullable(DateTime64(3, 'UTC'))",
    )),
    # The destination side of a delivery lane (fulfillment center -> "US-CA"), for transit
    # times per lane (issue 13). The view is replaced at start-up, before the sink inserts.
    Migration(6, "shipments know their destination region", (
        "ALTER TABLE shipments ADD COLUMN IF NOT EXISTS destination_region LowCardinality(String) "
        "AFTER delivery_time_zone",
        "DROP VIEW IF EXISTS shipments_mv",
        _view("shipments_mv", "shipments", _SHIPMENTS_SELECT.replace(
            "AS delivery_time_zone, ",
            "AS delivery_time_zone, attributes['destination_region'] AS destination_region, ")),
    )),
)


def keep_dead_letter_payloads(client: Client, days: int) -> bool:
    """Dead letters keep their original bytes ``days`` days (``TRACKLINE_DLQ_PAYLOAD_DAYS``), then
    only why they were refused: the payload may hold a customer's personal data. The row itself
    (reason, detail, where from) stays for the table's 90 days. Changed only when ``days`` differs
    from the table's: a change rewrites the table's parts. True if it changed."""
    create = client.query("SELECT create_table_query FROM system.tables "
                          "WHERE database = currentDatabase() AND name = 'dead_letters'").result_rows[0][0]
    current = re.search(r"`?payload`? String TTL [^,]*toIntervalDay\((\d+)\)", create)
    if current and int(current[1]) == days:
        return False
    client.command(f"ALTER TABLE dead_letters MODIFY COLUMN payload String "
                   f"TTL toDateTime(dead_lettered_at) + INTERVAL {int(days)} DAY")
    return True


def migrate(client: Client) -> list[int]:
    """Apply the migrations this database has not recorded; returns the versions applied."""
    client.command("""
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
        ) ENGINE = ReplacingMergeTree ORDER BY version
    """)
    done = {row[0] for row in client.query("SELECT version FROM schema_migrations FINAL").result_rows}
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        for statement in migration.statements:
            client.command(statement)
        client.insert("schema_migrations", [(migration.version, migration.name)], column_names=["version", "name"])
        applied.append(migration.version)
    return applied
