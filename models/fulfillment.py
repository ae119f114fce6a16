"""Fulfillment-center and order-management events: JSON on ``trackline.fc-events``."""

from __future__ import annotations

from pydantic import ValidationError

from models.errors import InvalidPayload
from models.events import FulfillmentEventT, fulfillment_event_adapter


def parse_fulfillment_event(raw: bytes) -> FulfillmentEventT:
    try:
        return fulfillment_event_adapter.validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        reason = "malformed_json" if first["type"] == "json_invalid" else (
            "missing_field" if first["type"] == "missing" else "invalid_field")
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidPayload(reason, f"{where}: {first['msg']}" if where else first["msg"]) from None


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
