"""`trackline migrate` on the real engine: versioned, idempotent, and no contact data anywhere."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from sinks.schema import MIGRATIONS

pytestmark = pytest.mark.integration


def trackline(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "trackline", *args], capture_output=True, check=True,
                          text=True, timeout=120).stdout


def query(dsn: str, sql: str) -> list[dict]:
    return orjson.loads(trackline("query", "--clickhouse", dsn, sql))


def test_migrate_applies_each_version_once(tmp_path):
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    latest = MIGRATIONS[-1].version
    assert f"schema at version {latest}" in trackline("migrate", "--clickhouse", dsn)
    assert trackline("migrate", "--clickhouse", dsn).strip() == f"schema already at version {latest}"
    versions = [r["version"] for r in query(dsn, "SELECT version FROM schema_migrations FINAL ORDER BY version")]
    assert versions == [m.version for m in MIGRATIONS]


def test_a_database_from_before_versioning_is_brought_up_to_date(tmp_path):
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    for statement in MIGRATIONS[0].statements:  # what the first release created, unversioned
        trackline("query", "--clickhouse", dsn, statement)
    trackline("query", "--clickhouse", dsn,
              "INSERT INTO history (record_id, record_type, order_id, occurred_at, ingested_at) "
              "VALUES ('r1', 'event', 'ORD-OLD', now64(3), now64(3))")
    trackline("migrate", "--clickhouse", dsn)
    (row,) = query(dsn, "SELECT order_id, attributes FROM history")
    assert row == {"order_id": "ORD-OLD", "attributes": {}}  # kept, with the new column


def test_no_table_has_a_column_for_contact_details(tmp_path):
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    trackline("migrate", "--clickhouse", dsn)
    columns = query(dsn, "SELECT table, name FROM system.columns WHERE database = currentDatabase()")
    assert len({c["table"] for c in columns}) >= 9
    assert [c for c in columns if any(word in c["name"].lower() for word in ("email", "phone", "address"))] == []


def test_a_retried_insert_counts_once_in_every_table_without_final(tmp_path):
    """The sink retries an insert with the same token after a timeout it could not read: the
    history table and every table its views feed must hold the rows once, even read without
    FINAL (as ad-hoc queries and count() do)."""
    from datetime import UTC, datetime

    from models.codec import encode
    from models.effects import HistoryRecord
    from sinks.clickhouse import connect, insert_history
    from sinks.schema import migrate

    client = connect(f"chdb://{tmp_path / 'clickhouse'}")
    migrate(client)
    at = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    kinds = {"event": {}, "transition": {}, "alert": {"due_at": at.isoformat(), "opened_at": at.isoformat()},
             "notification": {"outcome": "queued"}, "delivery": {"outcome": "sent"},
             "estimate": {"estimate": "2026-11-04"}, "shipment": {"seller_id": "S1"}}
    rows = [encode(HistoryRecord(record_id=f"{kind}-{n}", record_type=kind, order_id="ORD-1", package_id="P1",
                          event_id=f"{kind}-{n}", status="in_transit", occurred_at=at, ingested_at=at,
                          attributes=attributes)).decode()
            for kind, attributes in kinds.items() for n in range(2)]
    block = ("[" + ",".join(rows) + "]").encode()
    insert_history(client, block, "batch-token-1")
    once = {table: client.query(f"SELECT count() FROM {table}").result_rows[0][0] for table in
            ("history", "carrier_events", "status_transitions", "alerts", "notifications",
             "notification_deliveries", "delivery_estimates", "shipments")}
    assert once["history"] == len(rows) and all(once.values()), once
    insert_history(client, block, "batch-token-1")  # the retry
    twice = {table: client.query(f"SELECT count() FROM {table}").result_rows[0][0] for table in once}
    assert twice == once
