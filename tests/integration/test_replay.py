"""`trackline replay`: dead letters from ClickHouse back through their original topic, as they
first arrived, on the embedded (memory-only) broker and chDB."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import orjson

from models import topics
from models.ingest import RECEIVED_AT_HEADER
from tests.integration.conftest import Pipeline, sink_caught_up
from tests.integration.test_ingest import read_topic
from tests.integration.test_real_traffic import produce_at


def replay(run: Pipeline, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "trackline", "replay", "--kafka", run.bootstrap, "--clickhouse",
                           run.dsn, "--partitions", "3", *args], capture_output=True, timeout=120, env=run.env)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return orjson.loads(done.stdout)


def test_a_dead_letter_goes_back_as_it_arrived(pipeline: Pipeline) -> None:
    arrived = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    bad_scan = orjson.dumps({"carrier": "UPS", "tracking_number": "1ZREPLAY1", "events": [
        {"status": "in_transit", "occurred_at": "yesterday-ish", "message": "Departed"}]})
    bad_order = b'{"type": "order_placed", "order_id": "ORD-REPLAY"}'
    scan_headers = [(topics.SOURCE_HEADER, b"generic"), (RECEIVED_AT_HEADER, arrived.isoformat().encode())]
    pipeline.start("worker", "sink")
    produce_at(pipeline.bootstrap, [(topics.CARRIER_SCANS_RAW, b"1ZREPLAY1", bad_scan, scan_headers, arrived),
                                    (topics.FC_EVENTS, b"ORD-REPLAY", bad_order, [], arrived)])
    # Both on the DLQ topic, then in ClickHouse once the sink committed to the end.
    assert len(read_topic(pipeline.bootstrap, topics.DLQ, 2, timeout=90)) == 2
    sink_caught_up(pipeline, 90)
    pipeline.stop("sink")  # chDB: one process per data path at a time
    assert sorted(r["reason"] for r in pipeline.query("SELECT reason FROM dead_letters FINAL")) == [
        "invalid_field", "missing_field"]

    dry = replay(pipeline, "--reason", "missing_field", "--dry-run")
    assert (dry["selected"], dry["sent"], dry["by_topic_and_reason"]) == (
        1, 0, {f"{topics.FC_EVENTS} missing_field": 1})
    report = replay(pipeline, "--reason", "invalid_field", "--since", (arrived - timedelta(minutes=1)).isoformat())
    assert (report["selected"], report["sent"], report["failed"]) == (1, 1, [])

    raw = read_topic(pipeline.bootstrap, topics.CARRIER_SCANS_RAW, 2)
    first, again = raw
    assert again.key() == first.key() == b"1ZREPLAY1" and again.value() == first.value() == bad_scan
    assert again.timestamp()[1] == first.timestamp()[1] == int(arrived.timestamp() * 1000)  # receipt time kept
    headers = dict(again.headers())
    assert (headers[topics.SOURCE_HEADER], headers[RECEIVED_AT_HEADER]) == (b"generic", arrived.isoformat().encode())
    assert "trackline-replayed-at" in headers
    # The dry run sent nothing; the stream read the replayed scan and, unfixed, dead-lettered it again.
    assert len(read_topic(pipeline.bootstrap, topics.FC_EVENTS, 1)) == 1
    letters = read_topic(pipeline.bootstrap, topics.DLQ, 3, timeout=60)
    assert sorted(dict(m.headers())[topics.DLQ_REASON_HEADER] for m in letters) == [
        b"invalid_field", b"invalid_field", b"missing_field"]
