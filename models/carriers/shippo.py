"""Shippo ``track_updated`` webhooks.

Body: ``{event: "track_updated", test, data: <track>}``; the track has ``carrier``,
``tracking_number``, ``eta``, ``tracking_status`` (the latest) and ``tracking_history[]``,
each ``{status, substatus: {code, text, action_required}, status_details, status_date,
location: {city, state, zip, country}}``. One ``CarrierScan`` per history entry (the
latest status is in the history too; it is used alone when the history is empty).

Status mapping (Shippo -> trackline); ``raw_code`` keeps ``status/substatus.code``:

| Shippo status / substatus.code                         | trackline             |
|--------------------------------------------------------|-----------------------|
| PRE_TRANSIT                                            | info_received         |
| TRANSIT                                                | in_transit            |
| TRANSIT / out_for_delivery                             | out_for_delivery      |
| TRANSIT or FAILURE / delivery_attempted, notice_left   | attempt_failed        |
| TRANSIT / pickup_available                             | available_for_pickup  |
| TRANSIT / return_to_sender                             | returning_to_sender   |
| DELIVERED                                              | delivered             |
| RETURNED                                               | returned_to_sender    |
| FAILURE                                                | exception             |
| UNKNOWN, anything else                                 | unknown (raw kept)    |
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

SOURCE = "shippo"

STATUS_MAP = {
    "PRE_TRANSIT": PackageStatus.info_received,
    "TRANSIT": PackageStatus.in_transit,
    "DELIVERED": PackageStatus.delivered,
    "RETURNED": PackageStatus.returned_to_sender,
    "FAILURE": PackageStatus.exception,
}
SUBSTATUS_MAP = {
    "out_for_delivery": PackageStatus.out_for_delivery,
    "delivery_attempted": PackageStatus.attempt_failed,
    "notice_left": PackageStatus.attempt_failed,
    "pickup_available": PackageStatus.available_for_pickup,
    "return_to_sender": PackageStatus.returning_to_sender,
}


def status_for(status: str, substatus: str) -> PackageStatus:
    if status in ("TRANSIT", "FAILURE") and substatus in SUBSTATUS_MAP:
        return SUBSTATUS_MAP[substatus]
    return STATUS_MAP.get(status, PackageStatus.unknown)


def parse(raw: bytes, ingested_at: datetime) -> list[CarrierScan]:
    body = load_object(raw)
    event = required(body, "event", "body")
    if event != "track_updated":
        raise InvalidPayload("unsupported_event", f"Shippo event {event!r} is not track_updated")
    track = required_object(body, "data", "body")
    number = str(required(track, "tracking_number", "data"))
    carrier = normalize_carrier(str(required(track, "carrier", "data")))
    estimate = parse_date(track.get("eta"), "data.eta")
    history = (objects(track.get("tracking_history"), "data.tracking_history")
               or [required_object(track, "tracking_status", "data")])
    return [_scan(entry, i, carrier, number, estimate, ingested_at) for i, entry in enumerate(history)]


def _scan(entry: dict[str, Any], index: int, carrier: str, number: str, estimate: Any,
          ingested_at: datetime) -> CarrierScan:
    where = f"data.tracking_history[{index}]"
    status = str(required(entry, "status", where))
    substatus = entry.get("substatus") or {}
    code = str(substatus.get("code") or "") if isinstance(substatus, dict) else ""
    occurred_at = parse_time(required(entry, "status_date", where), f"{where}.status_date")
    message = str(entry.get("status_details") or "")
    return CarrierScan(
        event_id=stable_id(SOURCE, carrier, number, occurred_at.isoformat(), status, code, message),
        source=SOURCE, carrier=carrier, tracking_number=number, status=status_for(status, code),
        raw_code=f"{status}/{code}" if code else status, raw_message=message,
        occurred_at=occurred_at, ingested_at=ingested_at,
        location=place(entry.get("location"), ("city", "state", "country")), estimated_delivery=estimate,
    )
