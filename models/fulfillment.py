"""Fulfillment-center and order-management events: JSON on ``trackline.fc-events``."""

from __future__ import annotations

from pydantic import ValidationError

from models.errors import InvalidPayload, from_validation
from models.events import FulfillmentEventT, fulfillment_event_adapter


def parse_fulfillment_event(raw: bytes) -> FulfillmentEventT:
    """One event from JSON; every problem is ``InvalidPayload``, nothing else escapes.

    pydantic reports non-UTF-8, invalid JSON and nesting past its depth limit as ``json_invalid``
    (malformed_json), wrong types, naive times and unknown zones as ValidationErrors
    (invalid_field / missing_field); integers of any size are read, and bounded by the fields.
    """
    try:
        return fulfillment_event_adapter.validate_json(raw)
    except ValidationError as exc:
        raise from_validation(exc) from None
    except OSError as exc:
        # The delivery_time_zone check opens the file its name names: a directory ("America") or
        # an overlong name is an OSError, which pydantic passes through instead of reporting.
        raise InvalidPayload("invalid_field", f"delivery_time_zone: unknown IANA time zone ({exc.strerror})") from None


def fulfillment_json_schema() -> dict:
    """The documented contract for producers of ``trackline.fc-events``."""
    schema = fulfillment_event_adapter.json_schema()
    schema["title"] = "trackline fulfillment event"
    schema["description"] = (
        "One JSON object per Kafka message on trackline.fc-events, keyed by order_id. "
        "`type` selects the event: order_placed, package_shipped, order_cancelled, "
        "return_requested, return_received or refund_issued."
    )
    return schema
