"""The sink's promise to ops: every history row lands once, even through outages and replays."""

from __future__ import annotations

import threading
import time

import orjson
import pytest
from confluent_kafka import TopicPartition

from broker import clients
from models import topics
from sinks.clickhouse import GROUP, HistorySink
from tests.integration.conftest import PARTITIONS, produce

pytestmark = pytest.mark.integration


def history_envelopes(n_records: int, per_message: int = 50) -> list[tuple]:
    messages = []
    for start in range(0, n_records, per_message):
        docs = [{"kind": "history", "record_id": f"r{i}", "record_type": "event", "order_id": f"ORD-{i % 97}",
                 "event_id": f"e{i}", "source": "easypost", "status": "in_transit",
                 "occurred_at": "2026-11-02T08:00:00Z", "ingested_at": "2026-11-02T08:00:01Z"}
                for i in range(start, min(start + per_message, n_records))]
        messages.append((topics.HISTORY, None, orjson.dumps(docs), []))
    return messages


def committed(bootstrap: str) -> list[int]:
    consumer = clients.consumer(bootstrap, GROUP)
    try:
        tps = consumer.committed([TopicPartition(topics.HISTORY, p) for p in range(PARTITIONS)], timeout=10)
        return [tp.offset for tp in tps]
    finally:
        consumer.close()


@pytest.fixture(scope="session")
def chdb_dsn(tmp_path_factory) -> str:
    """chDB allows one engine path per process: every in-process sink here shares one."""
    return f"chdb://{tmp_path_factory.mktemp('chdb') / 'clickhouse'}"


@pytest.fixture
def dsn(chdb_dsn: str) -> str:
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=chdb_dsn)
    # A fresh database for each test: the sink migrates it from version 0 again.
    for (table,) in client.query("SHOW TABLES").result_rows:
        client.command(f"DROP TABLE IF EXISTS {table} SYNC")
    return chdb_dsn


def count(dsn: str, final: bool) -> int:
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=dsn)
    return client.query(f"SELECT count() FROM history {'FINAL' if final else ''}").result_rows[0][0]


def wait_until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_sink_started_while_clickhouse_is_down_waits_and_commits_nothing(broker):
    produce(broker, history_envelopes(500))
    # Nothing listens on this port.
    down = HistorySink(broker, "http://127.0.0.1:9/")
    thread = threading.Thread(target=down.run, daemon=True)
    thread.start()
    time.sleep(4)
    assert thread.is_alive(), "the sink gave up instead of waiting for ClickHouse"
    down.stopping.set()
    thread.join(35)
    assert down.rows_written == 0
    assert all(offset < 0 for offset in committed(broker))


def test_inserts_failing_mid_run_pause_commits_and_lose_nothing(broker, dsn):
    import clickhouse_connect

    sink = HistorySink(broker, dsn)
    thread = threading.Thread(target=sink.run, daemon=True)
    thread.start()
    produce(broker, history_envelopes(1000))
    wait_until(lambda: sink.rows_written == 1000, 60)
    before = committed(broker)
    ops = clickhouse_connect.get_client(dsn=dsn)  # the same engine, as a DBA would reach it
    ops.command("DETACH TABLE history")  # every insert now fails inside ClickHouse
    produce(broker, history_envelopes(3000)[20:])  # records 1000..2999
    time.sleep(6)
    assert committed(broker) == before, "offsets moved while ClickHouse refused the rows"
    ops.command("ATTACH TABLE history")
    wait_until(lambda: sink.rows_written == 3000, 90)
    sink.stopping.set()
    thread.join(30)
    assert count(dsn, final=True) == 3000
    assert sum(committed(broker)) == 20 + 40


def test_replayed_history_is_not_counted_twice(broker, dsn):
    produce(broker, history_envelopes(2000))
    HistorySink(broker, dsn).run(max_idle=8)
    # A crash between insert and commit replays the same records: here, the whole topic again.
    produce(broker, history_envelopes(2000, per_message=70))
    HistorySink(broker, dsn).run(max_idle=8)
    assert count(dsn, final=True) == 2000
