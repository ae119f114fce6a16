"""AfterShip ``tracking_update`` webhooks.

Body: ``{ts, event, event_id, is_tracking_first_tag, msg: <tracking>}``; the tracking has
``slug`` (the carrier), ``tracking_number``, ``tag``/``subtag``, ``expected_delivery`` and
``checkpoints[]`` (``checkpoint_time`` carrier time, ``tag``, ``subtag``, ``message``,
``city``, ``state``, ``country_region``, ``raw_tag`` the carrier's own code). One
``CarrierScan`` per checkpoint, with an id derived from its content.

Tag mapping (AfterShip -> trackline); ``raw_code`` keeps the carrier's ``raw_tag`` if sent,
else AfterShip's subtag:

| AfterShip tag / subtag                  | trackline             |
|-----------------------------------------|-----------------------|
| Pending, InfoReceived                   | info_received         |
| InTransit                               | in_transit            |
| OutForDelivery                          | out_for_delivery      |
| AttemptFail                             | attempt_failed        |
| AvailableForPickup                      | available_for_pickup  |
| Delivered                               | delivered             |
| Exception_010 (returning to sender)     | returning_to_sender   |
| Exception_011 (returned to sender)      | returned_to_sender    |
| Exception (other subtags)               | exception             |
| Expired, anything else                  | unknown (raw kept)    |
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

SOURCE = "aftership"
EVENT_TYPES = {"tracking_update"}

TAG_MAP = {
    "Pending": PackageStatus.info_received,
    "InfoReceived": PackageStatus.info_received,
    "InTransit": PackageStatus.in_transit,
    "OutForDelivery": PackageStatus.out_for_delivery,
    "AttemptFail": PackageStatus.attempt_failed,
    "AvailableForPickup": PackageStatus.available_for_pickup,
    "Delivered": PackageStatus.delivered,
    "Exception": PackageStatus.exception,
}
SUBTAG_MAP = {
    "Exception_010": PackageStatus.returning_to_sender,
    "Exception_011": PackageStatus.returned_to_sender,
}


def status_for(tag: str, subtag: str) -> PackageStatus:
    return SUBTAG_MAP.get(subtag) or TAG_MAP.get(tag, PackageStatus.unknown)


def parse(raw: bytes, ingested_at: datetime) -> list[CarrierScan]:
    body = load_object(raw)
    event = required(body, "event", "body")
    if event not in EVENT_TYPES:
        raise InvalidPayload("unsupported_event", f"AfterShip event {event!r} is not a tracking update")
    tracking = required_object(body, "msg", "body")
    number = str(required(tracking, "tracking_number", "msg"))
    carrier = normalize_carrier(str(required(tracking, "slug", "msg")))
    estimate = parse_date(tracking.get("expected_delivery"), "msg.expected_delivery")
    checkpoints = objects(tracking.get("checkpoints"), "msg.checkpoints")
    if not checkpoints:
        checkpoints = [{"tag": required(tracking, "tag", "msg"), "subtag": tracking.get("subtag"),
                        "checkpoint_time": tracking.get("updated_at") or required(body, "ts", "body")}]
    return [_scan(c, i, carrier, number, estimate, ingested_at) for i, c in enumerate(checkpoints)]


def _scan(checkpoint: dict[str, Any], index: int, carrier: str, number: str, estimate: Any,
          ingested_at: datetime) -> CarrierScan:
    where = f"msg.checkpoints[{index}]"
    tag = str(required(checkpoint, "tag", where))
    subtag = str(checkpoint.get("subtag") or "")
    time_value = checkpoint.get("checkpoint_time")
    occurred_at = (datetime.fromtimestamp(time_value, ingested_at.tzinfo) if isinstance(time_value, int)
                   else parse_time(required(checkpoint, "checkpoint_time", where), f"{where}.checkpoint_time"))
    message = str(checkpoint.get("message") or "")
    location = place(checkpoint, ("city", "state", "country_region"))
    return CarrierScan(
        event_id=stable_id(SOURCE, carrier, number, occurred_at.isoformat(), tag, subtag, message),
        source=SOURCE, carrier=carrier, tracking_number=number, status=status_for(tag, subtag),
        raw_code=str(checkpoint.get("raw_tag") or subtag or tag), raw_message=message,
        occurred_at=occurred_at, ingested_at=ingested_at,
        location=location or str(checkpoint.get("location") or ""), estimated_delivery=estimate,
    )
