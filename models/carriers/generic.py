"""The generic carrier JSON, for carriers without an aggregator (source ``generic``).

One JSON object per message::

    {
      "carrier": "acme-courier",
      "tracking_number": "AC1234567",
      "estimated_delivery": "2026-11-05",            (optional)
      "events": [
        {"status": "in_transit", "code": "DEP", "message": "Departed hub",
         "occurred_at": "2026-11-03T10:00:00Z", "location": "Reno, NV"},
        {"status": "available_for_pickup", "code": "PUA", "message": "Ready at locker",
         "occurred_at": "2026-11-04T09:00:00Z", "location": "Locker 12, Main St",
         "pickup_code": "4711", "pickup_deadline": "2026-11-07T20:00:00Z"}   (both optional)
      ]
    }

``status`` is one of trackline's package statuses (``info_received``, ``picked_up``,
``in_transit``, ``out_for_delivery``, ``attempt_failed``, ``available_for_pickup``,
``delivered``, ``exception``, ``returning_to_sender``, ``returned_to_sender``,
``cancelled``); anything else, or none, is ``unknown`` with ``code`` kept as the raw code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models.carriers.json_fields import load_object, objects, parse_date, parse_time, required
from models.effects import stable_id
from models.events import CarrierScan, PackageStatus, normalize_carrier

SOURCE = "generic"
STATUSES = {s.value: s for s in PackageStatus}


def parse(raw: bytes, ingested_at: datetime) -> list[CarrierScan]:
    body = load_object(raw)
    carrier = normalize_carrier(str(required(body, "carrier", "body")))
    number = str(required(body, "tracking_number", "body"))
    estimate = parse_date(body.get("estimated_delivery"), "body.estimated_delivery")
    events = objects(required(body, "events", "body"), "body.events")
    return [_scan(e, i, carrier, number, estimate, ingested_at) for i, e in enumerate(events)]


def _scan(event: dict[str, Any], index: int, carrier: str, number: str, estimate: Any,
          ingested_at: datetime) -> CarrierScan:
    where = f"events[{index}]"
    status = str(event.get("status") or "")
    code = str(event.get("code") or status)
    occurred_at = parse_time(required(event, "occurred_at", where), f"{where}.occurred_at")
    message = str(event.get("message") or "")
    return CarrierScan(
        event_id=stable_id(SOURCE, carrier, number, occurred_at.isoformat(), status, code, message),
        source=SOURCE, carrier=carrier, tracking_number=number,
        status=STATUSES.get(status, PackageStatus.unknown), raw_code=code, raw_message=message,
        occurred_at=occurred_at, ingested_at=ingested_at, location=str(event.get("location") or ""),
        estimated_delivery=estimate, pickup_code=str(event.get("pickup_code") or ""),
        pickup_deadline=(parse_time(event["pickup_deadline"], f"{where}.pickup_deadline")
                         if event.get("pickup_deadline") else None),
    )
