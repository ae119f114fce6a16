"""EasyPost webhook Events (``tracker.updated`` / ``tracker.created``).

The Event's ``result`` is the whole Tracker, with every ``tracking_details`` entry so far.
Each entry becomes one ``CarrierScan`` with an id derived from its content, so the
history resent in every webhook is recognised as duplicates downstream.

Status mapping (EasyPost ``status`` -> trackline):

| EasyPost               | trackline             |
|------------------------|-----------------------|
| pre_transit            | info_received         |
| in_transit             | in_transit            |
| out_for_delivery       | out_for_delivery      |
| delivered              | delivered             |
| available_for_pickup   | available_for_pickup  |
| return_to_sender       | returning_to_sender   |
| failure                | exception             |
| cancelled              | cancelled             |
| error, unknown, other  | unknown (raw kept)    |

``raw_code`` keeps ``status/status_detail`` as EasyPost sent them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models.carriers.json_fields import (
    load_object,
    objects,
    parse_date,
    parse_time,
    place,
    required,
    required_object,
)
from models.effects import stable_id
from models.errors import InvalidPayload
from models.events import CarrierScan, PackageStatus, normalize_carrier

SOURCE = "easypost"
EVENT_TYPES = {"tracker.updated", "tracker.created"}

STATUS_MAP = {
    "pre_transit": PackageStatus.info_received,
    "in_transit": PackageStatus.in_transit,
    "out_for_delivery": PackageStatus.out_for_delivery,
    "delivered": PackageStatus.delivered,
    "available_for_pickup": PackageStatus.available_for_pickup,
    "return_to_sender": PackageStatus.returning_to_sender,
    "failure": PackageStatus.exception,
    "cancelled": PackageStatus.cancelled,
}


def parse(raw: bytes, ingested_at: datetime) -> list[CarrierScan]:
    event = load_object(raw)
    description = required(event, "description", "event")
    if description not in EVENT_TYPES:
        raise InvalidPayload("unsupported_event", f"EasyPost event {description!r} is not a tracker event")
    tracker = required_object(event, "result", "event")
    tracking_code = str(required(tracker, "tracking_code", "result"))
    carrier = normalize_carrier(str(required(tracker, "carrier", "result")))
    estimate = parse_date(tracker.get("est_delivery_date"), "result.est_delivery_date")
    details = objects(tracker.get("tracking_details"), "result.tracking_details")
    if not details:
        # A tracker with no history yet still tells us its status.
        details = [{
            "status": required(tracker, "status", "result"),
            "status_detail": tracker.get("status_detail"),
            "message": "",
            "datetime": tracker.get("updated_at") or required(event, "created_at", "event"),
        }]
    return [
        _scan(detail, i, carrier, tracking_code, estimate, ingested_at)
        for i, detail in enumerate(details)
    ]


def _scan(detail: dict[str, Any], index: int, carrier: str, tracking_code: str, estimate: Any,
          ingested_at: datetime) -> CarrierScan:
    where = f"result.tracking_details[{index}]"
    raw_status = str(required(detail, "status", where))
    status_detail = detail.get("status_detail") or ""
    occurred_at = parse_time(required(detail, "datetime", where), f"{where}.datetime")
    message = str(detail.get("message") or "")
    return CarrierScan(
        event_id=stable_id(SOURCE, carrier, tracking_code, occurred_at.isoformat(), raw_status, message),
        source=SOURCE,
        carrier=carrier,
        tracking_number=tracking_code,
        status=STATUS_MAP.get(raw_status, PackageStatus.unknown),
        raw_code=f"{raw_status}/{status_detail}" if status_detail else raw_status,
        raw_message=message,
        occurred_at=occurred_at,
        ingested_at=ingested_at,
        location=place(detail.get("tracking_location"), ("city", "state", "country")),
        estimated_delivery=estimate,
    )

