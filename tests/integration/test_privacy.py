"""A customer's right to erasure, as an operator carries it out: `trackline forget --customer`
against the running pipeline (embedded, memory-only broker; chDB), and dead letters that keep
their original bytes only as long as configured."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
from confluent_kafka import Consumer, TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from models import topics
from sinks.clickhouse import REDACTED
from tests.integration.conftest import PARTITIONS, Pipeline, preferences_stored, produce, sink_caught_up


def latest_changelog_values(run: Pipeline, changelog: str) -> dict[bytes, bytes | None]:
    consumer = Consumer({"bootstrap.servers": run.bootstrap, "group.id": "test-read-changelog"})
    consumer.assign([TopicPartition(changelog, p, 0) for p in range(PARTITIONS)])
    latest: dict[bytes, bytes | None] = {}
    try:
        while messages := consumer.consume(1000, timeout=1.0):
            latest.update((m.key(), m.value()) for m in messages if not m.error() and m.key())
    finally:
        consumer.close()
    return latest


def forget(run: Pipeline, *customers: str) -> dict:
    args = [a for c in customers for a in ("--customer", c)]
    done = subprocess.run([sys.executable, "-m", "trackline", "forget", "--kafka", run.bootstrap, "--clickhouse",
                           run.dsn, "--partitions", str(PARTITIONS), *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_forget_erases_a_customers_contact_data_and_redacts_their_dead_letters(pipeline: Pipeline) -> None:
    pipeline.start("worker", "sink")
    preferences = orjson.loads((Path(__file__).parents[1] / "payloads" / "customer_preferences.json").read_bytes())
    forgotten = {**preferences, "customer_id": "C-FORGET-1", "email": "jane.roe@example.com",
                 "phone": "+4915112345678"}
    kept = {**preferences, "customer_id": "C-KEEP-2", "email": "max@example.com"}
    produce(pipeline.bootstrap, [
        (topics.CUSTOMER_PREFERENCES, b"C-FORGET-1", orjson.dumps(forgotten), []),
        (topics.CUSTOMER_PREFERENCES, b"C-KEEP-2", orjson.dumps(kept), []),
        # Refused fulfillment events, with what a shop might put in them: kept as they came.
        (topics.FC_EVENTS, b"ORD-F1", orjson.dumps({"type": "order_placed", "event_id": "E-F1", "order_id": "ORD-F1",
                                                    "customer_id": "C-FORGET-1", "ship_to": "Jane Roe, Main 1"}), []),
        (topics.FC_EVENTS, b"ORD-F2", b'{"customer_id": "C-FORGET-1", "ship_to": "Jane Roe", broken', []),
        (topics.FC_EVENTS, b"ORD-K1", orjson.dumps({"type": "order_placed", "event_id": "E-K1", "order_id": "ORD-K1",
                                                    "customer_id": "C-KEEP-2", "ship_to": "Max Muster"}), []),
    ])
    preferences_stored(pipeline, ["C-FORGET-1", "C-KEEP-2"])
    sink_caught_up(pipeline)
    pipeline.stop("sink")  # chDB: one process per data path at a time (a ClickHouse server has no such limit)
    assert len(pipeline.query("SELECT message_key FROM dead_letters FINAL WHERE source_topic = "
                              f"'{topics.FC_EVENTS}'")) == 3

    report = forget(pipeline, "C-FORGET-1")
    assert report == {"C-FORGET-1": {"preferences_and_contact": "tombstoned", "dead_letters_redacted": 2}}

    letters = {r["message_key"]: r for r in pipeline.query(
        f"SELECT message_key, reason, payload FROM dead_letters FINAL WHERE source_topic = '{topics.FC_EVENTS}'")}
    assert letters["ORD-F1"]["payload"] == letters["ORD-F2"]["payload"] == REDACTED
    assert letters["ORD-F1"]["reason"] == "missing_field" and letters["ORD-F2"]["reason"] == "malformed_json"
    assert "Max Muster" in letters["ORD-K1"]["payload"]  # another customer's dead letter is untouched
    # The preferences topic ends in a tombstone for the customer, and so does the worker's table.
    pipeline.wait_for(lambda: latest_changelog_values(pipeline, "trackline-customer-preferences-changelog").get(
        b"C-FORGET-1", b"") is None, 60, "the worker to drop the customer's preferences")
    assert latest_changelog_values(pipeline, topics.CUSTOMER_PREFERENCES)[b"C-FORGET-1"] is None
    assert latest_changelog_values(pipeline, "trackline-customer-preferences-changelog")[b"C-KEEP-2"] is not None
    # Asked again (a retried erasure request), nothing is left to redact.
    assert forget(pipeline, "C-FORGET-1")["C-FORGET-1"]["dead_letters_redacted"] == 0


def test_dead_letters_keep_their_bytes_only_as_long_as_configured(tmp_path: Path) -> None:
    # chDB opens one database path per process: the engine runs in a child process.
    script = textwrap.dedent(f"""
        import json
        from datetime import datetime, timedelta, timezone
        from sinks.clickhouse import connect
        from sinks.schema import DEAD_LETTER_COLUMNS, keep_dead_letter_payloads, migrate
        client = connect("chdb://{tmp_path / 'clickhouse'}")
        migrate(client)
        changed = [keep_dead_letter_payloads(client, 30), keep_dead_letter_payloads(client, 30)]
        now = datetime.now(timezone.utc)
        rows = [("trackline.fc-events", 0, offset, "malformed_json", "bad", "", "ORD", payload,
                 now - timedelta(days=age), offset, {{}}, None)
                for offset, (age, payload) in enumerate([(40, "old bytes"), (5, "recent bytes")])]
        client.insert("dead_letters", rows, column_names=DEAD_LETTER_COLUMNS)
        client.command("OPTIMIZE TABLE dead_letters FINAL")
        kept = client.query("SELECT reason, payload FROM dead_letters FINAL ORDER BY source_offset").result_rows
        changed.append(keep_dead_letter_payloads(client, 7))
        print(json.dumps({{"changed": changed, "kept": kept}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["changed"] == [True, False, True]  # set once, left alone at the next start, changed on request
    assert result["kept"] == [["malformed_json", ""], ["malformed_json", "recent bytes"]]


@settings(max_examples=4, deadline=None)
@given(customers=st.lists(st.text(st.sampled_from(".*+?()[]{}|^$\\'\"%_ #&~-@:") | st.characters(
    blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12).filter(lambda s: s.strip() == s and s),
    min_size=2, max_size=5, unique=True))
def test_forget_finds_a_customer_whatever_characters_the_id_holds(customers: list[str]) -> None:
    # Ids are the shop's: quotes, regex and SQL metacharacters, spaces, any script. The id is
    # bound as a parameter and escaped for the pattern; a wrong escape would miss or over-match.
    forgotten = customers[0]
    rows = [(c, form, payload) for c in customers for form, payload in (
        ("json", orjson.dumps({"customer_id": c, "channels": 7}).decode()),  # a document the reader refused
        ("alone", f"broken {{ {c} ]"))]  # too broken to parse: the id standing alone
    script = textwrap.dedent("""
        import json, sys, tempfile
        from datetime import datetime, timezone
        from sinks.clickhouse import REDACTED, connect, redact_customer
        from sinks.schema import DEAD_LETTER_COLUMNS, migrate
        rows, forgotten = json.loads(sys.stdin.read())
        client = connect("chdb://" + tempfile.mkdtemp())
        migrate(client)
        now = datetime.now(timezone.utc)
        client.insert("dead_letters", [("trackline.customer-preferences", 0, i, "invalid_field", "bad", "", "key",
                                        payload, now, i, {}, None) for i, (_, _, payload) in enumerate(rows)],
                      column_names=DEAD_LETTER_COLUMNS)
        redact_customer(client, forgotten)
        found = client.query("SELECT source_offset, payload = {r:String} FROM dead_letters FINAL "
                             "ORDER BY source_offset", parameters={"r": REDACTED}).result_rows
        print(json.dumps([bool(redacted) for _, redacted in found]))
    """)
    done = subprocess.run([sys.executable, "-c", script], input=json.dumps([rows, forgotten]), capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    redacted = json.loads(done.stdout.strip().splitlines()[-1])
    for (customer, form, payload), gone in zip(rows, redacted, strict=True):
        if customer == forgotten:
            assert gone, (form, payload)
        elif forgotten not in payload:  # another customer's row that never names this one stays
            assert not gone, (customer, form, payload)
