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
    try:  # a test that failed while history was detached must not break the next one
        client.command("ATTACH TABLE history")
    except Exception:
        pass
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


def test_sink_started_while_clickhouse_is_down_waits_and_commits_nothing(broker, dsn):
    import clickhouse_connect

    produce(broker, history_envelopes(500))  # 10 messages

    def history_goes_away(client, lock):
        # ClickHouse is reachable but cannot take history rows (a DBA detached the table):
        # the sink is connected and consuming, and every insert fails inside ClickHouse.
        client.command("DETACH TABLE history")

    sink = HistorySink(broker, dsn, on_connected=history_goes_away)
    thread = threading.Thread(target=sink.run, daemon=True)
    thread.start()
    ops = clickhouse_connect.get_client(dsn=dsn)
    try:
        # Positive marker: the sink has read the rows and tried to insert them three times.
        wait_until(lambda: sink.failed_inserts >= 3, 60)
        assert sink.messages_read == 10
        assert sink.paused, "the sink keeps reading while ClickHouse refuses rows"
        assert all(offset < 0 for offset in committed(broker)), "offsets committed for rows ClickHouse never took"
        # Back-off: each wait doubles, so a long outage costs ClickHouse a few attempts a minute.
        assert sink.retry_waits[:3] == [0.5, 1.0, 2.0]
        # Paused means paused: rows produced now stay on the broker through two more attempts.
        produce(broker, history_envelopes(750)[10:])  # 5 messages more
        wait_until(lambda: sink.failed_inserts >= 5, 60)
        assert sink.messages_read == 10, "the paused sink read new rows it could not store"
        assert sink.retry_waits[:4] == [0.5, 1.0, 2.0, 4.0]
        # An unavailable table is an outage, not 500 bad rows: nothing may be dead-lettered.
        assert ops.query("SELECT count() FROM dead_letters").result_rows[0][0] == 0
    finally:
        sink.stopping.set()  # stopped while ClickHouse still refuses: exits without committing
        thread.join(35)
    assert not thread.is_alive()
    assert sink.rows_written == 0
    assert all(offset < 0 for offset in committed(broker))

    ops.command("ATTACH TABLE history")
    restarted = HistorySink(broker, dsn)
    restarted.run(until=lambda: restarted.rows_written >= 750)
    assert restarted.rows_written == 750
    assert count(dsn, final=True) == 750
    assert sum(offset for offset in committed(broker) if offset > 0) == 15


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
    wait_until(lambda: sink.failed_inserts >= 3, 60)  # it read rows and has been refused three times
    assert sink.paused
    assert committed(broker) == before, "offsets moved while ClickHouse refused the rows"
    ops.command("ATTACH TABLE history")
    wait_until(lambda: sink.rows_written == 3000, 90)
    assert not sink.paused, "the sink stayed paused after ClickHouse came back"
    sink.stopping.set()
    thread.join(30)
    assert count(dsn, final=True) == 3000
    assert sum(committed(broker)) == 20 + 40


def test_replayed_history_is_not_counted_twice(broker, dsn):
    produce(broker, history_envelopes(2000))
    first = HistorySink(broker, dsn)
    first.run(until=lambda: first.rows_written >= 2000)
    # A crash between insert and commit replays the same records: here, the whole topic again.
    produce(broker, history_envelopes(2000, per_message=70))
    replay = HistorySink(broker, dsn)
    replay.run(until=lambda: replay.rows_written >= 2000)  # it read and stored the replay...
    assert count(dsn, final=True) == 2000  # ...and each row counts once


def history_document(i: int, **changes) -> dict:
    return {"kind": "history", "record_id": f"r{i}", "record_type": "event", "order_id": f"ORD-{i % 97}",
            "event_id": f"e{i}", "source": "easypost", "status": "in_transit",
            "occurred_at": "2026-11-02T08:00:00Z", "ingested_at": "2026-11-02T08:00:01Z", **changes}


def produce_with_positions(bootstrap: str, values: list[bytes]) -> list[tuple[int, int]]:
    """Each value onto trackline.history; returns where each landed (partition, offset)."""
    producer = clients.producer(bootstrap)
    landed: dict[int, tuple[int, int]] = {}
    for n, value in enumerate(values):
        producer.produce(topics.HISTORY, key=f"ORD-{n}".encode(), value=value,
                         on_delivery=lambda err, msg, n=n: landed.__setitem__(n, (msg.partition(), msg.offset()))
                         if err is None else None)
    assert producer.flush(30) == 0
    assert len(landed) == len(values), "not every message was acknowledged"
    return [landed[n] for n in range(len(values))]


def test_rows_clickhouse_refuses_are_dead_lettered_and_the_rest_lands(broker, dsn):
    import clickhouse_connect

    # 12 messages of 50 documents; the 8th carries two documents ClickHouse refuses
    # (a time that is no time, a time out of DateTime64's range) among 48 good ones.
    not_a_time = orjson.dumps(history_document(9001, occurred_at="not-a-time"))
    out_of_range = orjson.dumps(history_document(9002, ingested_at=10**18))
    values, good = [], 0
    for m in range(12):
        docs = [orjson.dumps(history_document(m * 50 + i)) for i in range(50)]
        if m == 7:
            docs[10], docs[31] = not_a_time, out_of_range
        good += sum(d not in (not_a_time, out_of_range) for d in docs)
        values.append(b"[" + b",".join(docs) + b"]")
    # And a message that is not a JSON array at all (a bug upstream): kept, not skipped.
    not_an_array = b'oops: {"record_id": "r-broken"'
    values.append(not_an_array)
    positions = produce_with_positions(broker, values)

    sink = HistorySink(broker, dsn)
    sink.run(until=lambda: sink.rows_written >= 601)  # 600 documents and the broken message

    # Every good row is in history, including the 48 that travelled with the refused ones.
    assert good == 598
    assert count(dsn, final=True) == good
    ops = clickhouse_connect.get_client(dsn=dsn)
    letters = ops.query("SELECT source_topic, source_partition, source_offset, reason, detail, payload, "
                        "message_key FROM dead_letters FINAL ORDER BY reason, detail").named_results()
    letters = list(letters)
    assert [(d["reason"], d["source_topic"]) for d in letters] == [
        ("invalid_internal_event", topics.HISTORY),
        ("rejected_by_clickhouse", topics.HISTORY),
        ("rejected_by_clickhouse", topics.HISTORY),
    ]
    broken, *refused = letters
    assert broken["payload"] == not_an_array.decode()
    assert (broken["source_partition"], broken["source_offset"]) == positions[12]
    # Each refused document: its own bytes, where its message was, and what ClickHouse said.
    assert sorted(d["payload"] for d in refused) == sorted([not_a_time.decode(), out_of_range.decode()])
    assert {(d["source_partition"], d["source_offset"], d["message_key"]) for d in refused} == {
        (*positions[7], "ORD-7")}
    details = {orjson.loads(d["payload"])["record_id"]: d["detail"] for d in refused}
    assert "CANNOT_PARSE_DATETIME" in details["r9001"] and "occurred_at" in details["r9001"]
    assert "DECIMAL_OVERFLOW" in details["r9002"] and "ingested_at" in details["r9002"]
    assert ops.query("SELECT count() FROM history WHERE record_id IN ('r9001', 'r9002')").result_rows[0][0] == 0
    # The consumer group is past every message: nothing is replayed or stuck.
    expected = [max((o + 1 for p, o in positions if p == partition), default=-1) for partition in range(PARTITIONS)]
    assert [o if o >= 0 else -1 for o in committed(broker)] == expected
    assert sink.rows_written == good + 2 + 1
