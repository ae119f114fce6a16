"""Fulfillment-center and order-management events: JSON on ``trackline.fc-events``."""

from __future__ import annotations

from pydantic import ValidationError

from models.errors import from_validation
from models.events import FulfillmentEventT, fulfillment_event_adapter


def parse_fulfillment_event(raw: bytes) -> FulfillmentEventT:
    try:
        return fulfillment_event_adapter.validate_json(raw)
    except ValidationError as exc:
        raise from_validation(exc) from None


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
