"""Bad input goes to the DLQ with its original bytes and the reason in headers."""

from __future__ import annotations

import logging
from typing import Any

import faust

from models import topics
from models.errors import InvalidPayload

log = logging.getLogger("trackline.dlq")


async def send_to_dlq(dlq: faust.TopicT, record: Any, error: InvalidPayload) -> None:
    """``record`` is the consumed Kafka record (topic, partition, offset, key, value, headers)."""
    log.info("dead letter from %s[%s]@%s: %s", record.topic, record.partition, record.offset, error)
    source = header(record, topics.SOURCE_HEADER) or b""
    await dlq.send(
        key=record.key,
        value=record.value,
        headers=[
            (topics.DLQ_REASON_HEADER, error.reason.encode()),
            (topics.DLQ_DETAIL_HEADER, error.detail[:1000].encode()),
            (topics.DLQ_TOPIC_HEADER, record.topic.encode()),
            (topics.DLQ_PARTITION_HEADER, str(record.partition).encode()),
            (topics.DLQ_OFFSET_HEADER, str(record.offset).encode()),
            (topics.SOURCE_HEADER, source),
        ],
    )


def header(record: Any, name: str) -> bytes | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value) if value is not None else None
    return None
