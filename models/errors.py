"""Why a record was dead-lettered: a closed set of reasons, and the headers that carry them.

| reason                 | what was wrong                                                     |
|------------------------|--------------------------------------------------------------------|
| malformed_json         | not JSON, or not the JSON object the format expects                |
| missing_field          | a field the format requires is absent or empty                     |
| invalid_field          | a field has the wrong type, an impossible value, a naive time, ... |
| unsupported_event      | a webhook event type trackline does not read (e.g. batch.created)  |
| unknown_source         | the source header names no adapter                                 |
| missing_source         | a raw carrier message without the source header                    |
| wrong_key              | a fulfillment event keyed by something other than its order id     |
| malformed_x12          | an X12 interchange or transaction that breaks the envelope rules   |
| invalid_internal_event | a record on an internal topic that does not decode: a bug          |
| delivery_failed        | a notification no channel took: refused, or failing past the retries |
| rejected_by_clickhouse | ClickHouse refused the row itself (a bad value), not an outage     |
| internal_error         | the record broke trackline's own code: a bug, kept for replay      |
| order_expired          | an event for an order whose state was removed (models/retention.py) |
| unreadable_order_state | an event for an order whose stored state does not decode (corrupt)  |
"""

from __future__ import annotations

import traceback
from typing import Any

from pydantic import ValidationError

DLQ_REASONS = frozenset({
    "malformed_json", "missing_field", "invalid_field", "unsupported_event", "unknown_source", "missing_source",
    "wrong_key", "malformed_x12", "invalid_internal_event", "delivery_failed", "rejected_by_clickhouse",
    "internal_error", "order_expired", "unreadable_order_state",
})


class InvalidPayload(ValueError):
    """A payload trackline cannot use. ``reason`` is a short code for dashboards and the DLQ."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in DLQ_REASONS:
            raise ValueError(f"{reason!r} is not a documented dead-letter reason")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def from_validation(exc: ValidationError) -> InvalidPayload:
    """The first thing pydantic found wrong, as a DLQ reason and where it was."""
    first = exc.errors()[0]
    reason = "malformed_json" if first["type"] == "json_invalid" else (
        "missing_field" if first["type"] == "missing" else "invalid_field")
    where = ".".join(str(p) for p in first["loc"])
    return InvalidPayload(reason, f"{where}: {first['msg']}" if where else first["msg"])


def internal_error(exc: BaseException) -> InvalidPayload:
    """A bug met while handling one record: dead-lettered so the rest of its batch goes on."""
    return InvalidPayload("internal_error", f"{type(exc).__name__}: {exc}"[:1000])


def last_frame(exc: BaseException) -> str:
    """Where the exception was raised: the traceback's last frame, as file:line in function."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}"


def dead_letter_headers(error: InvalidPayload, topic: str, partition: int, offset: int, source: bytes,
                        cause: BaseException | None = None, received_ms: int | None = None,
                        original: list[tuple[str, Any]] | None = None) -> list[tuple[str, bytes]]:
    """Headers of a DLQ record; its value is the original bytes, untouched. ``original``: the
    record's own headers, kept so ``trackline replay`` restores them with ``received_ms``, its
    timestamp (the receipt time the stream's clock reads)."""
    from models import topics

    cause = cause or error
    headers: list[tuple[str, Any]] = [
        (name, value) for name, value in original or ()
        if not name.startswith("trackline-dlq-") and name != topics.SOURCE_HEADER]
    if received_ms is not None and received_ms > 0:
        headers.append((topics.DLQ_RECEIVED_AT_HEADER, str(received_ms).encode()))
    headers += [
        (topics.DLQ_REASON_HEADER, error.reason.encode()),
        (topics.DLQ_DETAIL_HEADER, error.detail[:1000].encode()),
        (topics.DLQ_TOPIC_HEADER, topic.encode()),
        (topics.DLQ_PARTITION_HEADER, str(partition).encode()),
        (topics.DLQ_OFFSET_HEADER, str(offset).encode()),
        (topics.SOURCE_HEADER, source),
        (topics.DLQ_ERROR_TYPE_HEADER, type(cause).__name__.encode()),
        (topics.DLQ_ERROR_FRAME_HEADER, last_frame(cause).encode()),
    ]
    return headers
