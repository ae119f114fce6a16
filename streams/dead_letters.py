"""Bad input goes to the DLQ with its original bytes and the reason in headers."""

from __future__ import annotations

import logging

import faust
from faust.types import EventT

from models import topics
from models.errors import InvalidPayload

log = logging.getLogger("trackline.dlq")


async def send_to_dlq(dlq: faust.TopicT, event: EventT, error: InvalidPayload) -> None:
    message = event.message
    log.info("dead letter from %s[%s]@%s: %s", message.topic, message.partition,
             message.offset, error)
    source = dict(message.headers or {}).get(topics.SOURCE_HEADER, b"")
    await dlq.send(
        key=message.key,
        value=message.value,
        headers=[
            (topics.DLQ_REASON_HEADER, error.reason.encode()),
            (topics.DLQ_DETAIL_HEADER, error.detail[:1000].encode()),
            (topics.DLQ_TOPIC_HEADER, message.topic.encode()),
            (topics.DLQ_PARTITION_HEADER, str(message.partition).encode()),
            (topics.DLQ_OFFSET_HEADER, str(message.offset).encode()),
            (topics.SOURCE_HEADER, source if isinstance(source, bytes) else str(source).encode()),
        ],
    )
