"""Bad input goes to the DLQ with its original bytes and the reason in headers.

A dead letter is sent through the batch's ``Outbox``, so it is confirmed with the rest of
the batch: an offset is never committed past a record that is neither processed nor in
the DLQ.
"""

from __future__ import annotations

import logging
from typing import Any

from models import topics
from models.errors import InvalidPayload, dead_letter_headers, internal_error
from streams.batch_io import Outbox
from trackline.metrics import DEAD_LETTERS

log = logging.getLogger("trackline.dlq")


async def send_to_dlq(outbox: Outbox, record: Any, error: InvalidPayload | BaseException,
                      value: bytes | None = None) -> None:
    """``record`` is the consumed Kafka record; ``value`` a part of it, when only a part was bad.

    Any exception that is not ``InvalidPayload`` is a bug in trackline: it goes with the
    reason ``internal_error`` and its type and last frame, and the batch goes on.
    """
    invalid = error if isinstance(error, InvalidPayload) else internal_error(error)
    if invalid is error:
        log.info("dead letter from %s[%s]@%s: %s", record.topic, record.partition, record.offset, invalid)
    else:
        log.error("dead letter (internal error) from %s[%s]@%s", record.topic, record.partition, record.offset,
                  exc_info=error)
    headers = dead_letter_headers(invalid, record.topic, record.partition, record.offset,
                                  header(record, topics.SOURCE_HEADER) or b"", cause=error,
                                  received_ms=int(record.timestamp or 0),
                                  original=[(k, bytes(v) if v is not None else b"") for k, v in record.headers or ()])
    await outbox.records(topics.DLQ, 0, [(record.key, record.value if value is None else value)], headers=headers)
    # Counted once the broker stored it: a batch retried after a failed send counts it once.
    outbox.on_stored.append(DEAD_LETTERS.labels(invalid.reason, record.topic).inc)


def header(record: Any, name: str) -> bytes | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value) if value is not None else None
    return None
