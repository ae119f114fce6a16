"""``trackline replay``: dead letters from ClickHouse back through the topic they came from.

The DLQ topic keeps 7 days; ``dead_letters`` keeps 90. After a parser fix, or a correction
upstream, the records a reason (or a time range) selects are produced again as they first
arrived: same topic, key, value and headers, and their original receipt time as the record
timestamp, so the stream's ingest-time clock reads them as it did then. Each carries
``trackline-replayed-at``. A record that fails again is dead-lettered again, with its reason.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from broker import clients
from models import topics
from sinks.clickhouse import REDACTED

REPLAYED_HEADER = "trackline-replayed-at"


def select(client: Any, reasons: list[str], topic: str | None, since: datetime | None, until: datetime | None,
           limit: int) -> list[dict[str, Any]]:
    """The dead letters the filters select (``dead_lettered_at`` in [since, until)), oldest first."""
    # Erased (``trackline forget``) or past TRACKLINE_DLQ_PAYLOAD_DAYS: no bytes left to send.
    where = ["source_topic != ''", "payload NOT IN ('', {redacted:String})"]
    parameters: dict[str, Any] = {"redacted": REDACTED}
    if reasons:
        where.append("reason IN {reasons:Array(String)}")
        parameters["reasons"] = reasons
    if topic:
        where.append("source_topic = {topic:String}")
        parameters["topic"] = topic
    if since:
        where.append("dead_lettered_at >= {since:DateTime64(3, 'UTC')}")
        parameters["since"] = since
    if until:
        where.append("dead_lettered_at < {until:DateTime64(3, 'UTC')}")
        parameters["until"] = until
    result = client.query(
        "SELECT source_topic, source_partition, source_offset, reason, message_key, payload, original_headers, "
        f"received_at, dead_lettered_at FROM dead_letters FINAL WHERE {' AND '.join(where)} "
        f"ORDER BY dead_lettered_at, source_topic, source_partition, source_offset LIMIT {int(limit)}",
        parameters=parameters, column_formats={"payload": "bytes"})
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def replay(bootstrap: str, letters: list[dict[str, Any]], dry_run: bool = False) -> dict[str, Any]:
    """Produce ``letters`` to their original topics; the report counts what was sent and refused."""
    sent: Counter[str] = Counter()
    failed: list[str] = []
    producer = None if dry_run else clients.producer(bootstrap)
    now = datetime.now(UTC).isoformat().encode()
    for letter in letters:
        topic = letter["source_topic"]
        if topic == topics.DLQ or topic not in topics.ALL:
            failed.append(f"{topic}: not a trackline topic")
            continue
        received = letter["received_at"] or letter["dead_lettered_at"]
        if received.tzinfo is None:
            received = received.replace(tzinfo=UTC)
        headers = [(k, v.encode()) for k, v in (letter["original_headers"] or {}).items()]
        headers.append((REPLAYED_HEADER, now))
        if producer is not None:
            def on_delivery(error: Any, _message: Any, where: str = f"{topic}@{letter['source_offset']}") -> None:
                if error is not None:
                    failed.append(f"{where}: {error}")

            producer.produce(topic, key=(letter["message_key"] or "").encode() or None, value=letter["payload"],
                             headers=headers, timestamp=int(received.timestamp() * 1000), on_delivery=on_delivery)
            producer.poll(0)
        sent[f"{topic} {letter['reason']}"] += 1
    if producer is not None and producer.flush(60) > 0:
        failed.append("not acknowledged within 60 s")
    return {"dry_run": dry_run, "selected": len(letters), "sent": 0 if dry_run else sum(sent.values()) - len(failed),
            "by_topic_and_reason": dict(sorted(sent.items())), "failed": failed}
