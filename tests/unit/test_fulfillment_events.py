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


def test_an_order_names_its_destination_and_the_state_keeps_only_the_lane_side():
    """A lane is fulfillment center -> destination region; the street and the full postal code
    are not trackline's business and stay out of the state and the history."""
    from models.codec import encode, encode_state
    from models.effects import HistoryRecord
    from models.events import PackageStatus
    from models.order import apply
    from tests.conftest import scan

    placed = parse_fulfillment_event(orjson.dumps({
        **PLACED, "destination": {"country": "US", "region": "ca", "postal_code": "94107-1234"}}))
    state, _ = apply(None, placed)
    assert (state.destination_region, state.destination_postal_prefix) == ("US-CA", "941")
    shipped = parse_fulfillment_event(orjson.dumps({
        "type": "package_shipped", "event_id": "e2", "order_id": "ORD-1", "occurred_at": "2026-11-02T09:00:00Z",
        "package_id": "P1", "carrier": "UPS", "tracking_number": "1Z999"}))
    state, effects = apply(state, shipped)
    state, effects = apply(state, scan(PackageStatus.delivered, 3000))
    (record,) = [e for e in effects if isinstance(e, HistoryRecord) and e.record_type == "shipment"]
    assert record.attributes["destination_region"] == "US-CA"
    assert b"94107" not in encode_state(state) and b"94107" not in encode(record)


@pytest.mark.parametrize("destination", [{"region": "CA"}, {"country": "usa"}, {"country": "US", "region": "X" * 9}])
def test_a_destination_without_an_iso_country_is_refused(destination):
    with pytest.raises(InvalidPayload) as caught:
        parse_fulfillment_event(orjson.dumps({**PLACED, "destination": destination}))
    assert caught.value.reason in ("missing_field", "invalid_field") and "destination" in caught.value.detail
