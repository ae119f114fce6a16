from __future__ import annotations

import orjson
import pytest

from models.errors import InvalidPayload
from models.events import OrderPlaced, PackageShipped
from models.fulfillment import fulfillment_json_schema, parse_fulfillment_event

PLACED = {
    "type": "order_placed", "event_id": "e1", "order_id": "ORD-1", "occurred_at": "2026-11-02T08:00:00Z",
    "customer_id": "C1", "seller_id": "S1", "fulfillment_center": "FC-A", "service_level": "two_day",
    "promised_delivery_date": "2026-11-04", "ship_by": "2026-11-02T20:00:00Z",
    "items": [{"sku": "SKU-1", "quantity": 2}],
}


def test_order_placed_is_read_with_its_promise_and_items():
    event = parse_fulfillment_event(orjson.dumps(PLACED))
    assert isinstance(event, OrderPlaced)
    assert str(event.promised_delivery_date) == "2026-11-04"
    assert event.items[0].quantity == 2


def test_package_shipped_is_read():
    event = parse_fulfillment_event(orjson.dumps({
        "type": "package_shipped", "event_id": "e2", "order_id": "ORD-1", "occurred_at": "2026-11-02T09:00:00Z",
        "package_id": "P1", "carrier": "UPS", "tracking_number": "1Z1"}))
    assert isinstance(event, PackageShipped) and event.tracking_number == "1Z1"


@pytest.mark.parametrize("raw, reason, says", [
    (b"{not json", "malformed_json", ""),
    (orjson.dumps({k: v for k, v in PLACED.items() if k != "customer_id"}), "missing_field", "customer_id"),
    (orjson.dumps({**PLACED, "service_level": "teleport"}), "invalid_field", "service_level"),
    (orjson.dumps({**PLACED, "type": "order_exploded"}), "invalid_field", ""),
])
def test_bad_events_say_what_is_wrong(raw, reason, says):
    with pytest.raises(InvalidPayload) as caught:
        parse_fulfillment_event(raw)
    assert caught.value.reason == reason
    assert says in caught.value.detail


def test_json_schema_documents_every_event_type():
    schema = fulfillment_json_schema()
    from typing import get_args

    from models.events import FulfillmentEventT

    titles = set(schema["$defs"])
    assert {event.__name__ for event in get_args(FulfillmentEventT)} <= titles
    documented = {d["properties"]["type"]["const"] for d in schema["$defs"].values()
                  if "type" in d.get("properties", {})}
    assert documented == {event.model_fields["type"].default for event in get_args(FulfillmentEventT)}
    assert "promised_delivery_date" in schema["$defs"]["OrderPlaced"]["required"]
    # The committed document, docs/schemas/fc-events.schema.json, is checked in test_schemas.py.
