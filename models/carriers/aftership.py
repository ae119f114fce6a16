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

Action reasons (checkpoint ``subtag`` -> ``action_reason``), whatever the tag says (AfterShip
delivery sub-statuses, aftership.com/docs/tracking/enum/delivery-sub-statuses):

| subtag                                        | action_reason                          |
|-----------------------------------------------|----------------------------------------|
| Exception_001 (exception, no reason)          | other                                  |
| Exception_002 (customer moved)                | address_issue                          |
| Exception_003 (customer refused delivery)     | refused                                |
| Exception_004 (customs clearance delay)       | customs                                |
| Exception_005 (delayed, external factors)     | delayed                                |
| Exception_006 (held for payment)              | payment_due                            |
| Exception_007 (incorrect address)             | address_issue                          |
| Exception_008 (pick-up missed: not collected) | other (no closer reason in our set)    |
| Exception_009 (rejected by carrier)           | contact_carrier                        |
| Exception_010, _011 (returning / returned)    | returned_to_sender                     |
| Exception_012 (damaged)                       | damaged                                |
| Exception_013 (lost)                          | lost                                   |
| Exception_016, _019 (processing, late flight) | delayed                                |
| Exception_017 (extreme weather)               | weather                                |
| Exception_018 (incorrect/missing documents)   | customs                                |
| Exception_021 (disposed)                      | lost                                   |
| AttemptFail_001 (failed attempt)              | from the message (*), else missed_delivery |
| AttemptFail_002 (addressee not available)     | recipient_unavailable                  |
| AttemptFail_003 (business closed)             | business_closed                        |
| other Exception_*                             | other                                  |
| other AttemptFail_*                           | from the message (*), else missed_delivery |
| anything else                                 | none                                   |

(*) ``json_fields.failed_attempt_reason``: "not available", "no one", ... -> recipient_unavailable;
"closed" -> business_closed; "address" -> address_issue; "refused"; "weather".

Times: ``checkpoint_time`` is the carrier's time, often local time without an offset. Such a
time takes the zone of the checkpoint's ``country_region`` (or ``country_iso3``) and
``state`` where one can be derived (flagged ``time_zone_from_location``), else UTC (flagged
``time_zone_assumed_utc``). An integer ``checkpoint_time`` (or the body's ``ts`` when there
are no checkpoints) is epoch seconds.

Errors: every problem with the body is an ``InvalidPayload`` (malformed_json, missing_field,
invalid_field for a wrong type or an impossible time, unsupported_event); nothing else escapes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from models.carriers.json_fields import (
    Payload,
    epoch_time,
    failed_attempt_reason,
    load_object,
    objects,
    optional_str,
    parse_date,
    place_parts,
    required,
    required_carrier,
    required_code,
    required_object,
    required_str,
    scan_time,
)
from models.effects import stable_id
from models.errors import InvalidPayload
from models.events import CarrierScan, ExceptionReason, PackageStatus, ScanFlag

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
R = ExceptionReason
ACTION_REASONS = {
    "Exception_001": R.other, "Exception_002": R.address_issue, "Exception_003": R.refused,
    "Exception_004": R.customs, "Exception_005": R.delayed, "Exception_006": R.payment_due,
    "Exception_007": R.address_issue, "Exception_008": R.other, "Exception_009": R.contact_carrier,
    "Exception_010": R.returned_to_sender, "Exception_011": R.returned_to_sender, "Exception_012": R.damaged,
    "Exception_013": R.lost, "Exception_016": R.delayed, "Exception_017": R.weather, "Exception_018": R.customs,
    "Exception_019": R.delayed, "Exception_021": R.lost,
    "AttemptFail_002": R.recipient_unavailable, "AttemptFail_003": R.business_closed,
}


def status_for(tag: str, subtag: str) -> PackageStatus:
    return SUBTAG_MAP.get(subtag) or TAG_MAP.get(tag, PackageStatus.unknown)


def action_reason_for(subtag: str, message: str) -> ExceptionReason | None:
    if subtag in ACTION_REASONS:
        return ACTION_REASONS[subtag]
    if subtag.startswith("AttemptFail"):
        # AttemptFail_001 says only that an attempt failed: the carrier's words may say why.
        return failed_attempt_reason(message)
    return R.other if subtag.startswith("Exception") else None


def parse(raw: Payload, ingested_at: datetime) -> list[CarrierScan]:
    """The webhook's checkpoints as scans; any problem is ``InvalidPayload``, nothing else."""
    body = load_object(raw)
    event = required_str(body, "event", "body")
    if event not in EVENT_TYPES:
        raise InvalidPayload("unsupported_event", f"AfterShip event {event[:64]!r} is not a tracking update")
    tracking = required_object(body, "msg", "body")
    number = required_code(tracking, "tracking_number", "msg")
    carrier = required_carrier(tracking, "slug", "msg")
    estimate = parse_date(tracking.get("expected_delivery"), "msg.expected_delivery")
    checkpoints = objects(tracking.get("checkpoints"), "msg.checkpoints")
    if checkpoints:
        return [_scan(c, f"msg.checkpoints[{i}]", carrier, number, estimate, ingested_at)
                for i, c in enumerate(checkpoints)]
    # No checkpoints yet: the tracking's own tag, at its last update (or the webhook's time).
    when = tracking.get("updated_at")
    latest = {"tag": required_str(tracking, "tag", "msg"), "subtag": optional_str(tracking, "subtag", "msg"),
              "checkpoint_time": when if when is not None else required(body, "ts", "body")}
    return [_scan(latest, "msg", carrier, number, estimate, ingested_at)]


def entry_time(checkpoint: dict[str, Any], where: str = "checkpoints[]") -> tuple[datetime, list[ScanFlag]]:
    """When a checkpoint was scanned (an offset-less time in the zone of its place)."""
    country = optional_str(checkpoint, "country_region", where) or optional_str(checkpoint, "country_iso3", where)
    state = optional_str(checkpoint, "state", where)
    return _checkpoint_time(required(checkpoint, "checkpoint_time", where), f"{where}.checkpoint_time",
                            country, state)


def _checkpoint_time(value: Any, where: str, country: str, state: str) -> tuple[datetime, list[ScanFlag]]:
    if isinstance(value, int | float):  # epoch seconds; epoch_time rejects bools, floats and absurd values
        return epoch_time(value, where), []
    return scan_time(value, where, country, state)


def _scan(checkpoint: dict[str, Any], where: str, carrier: str, number: str, estimate: date | None,
          ingested_at: datetime) -> CarrierScan:
    tag = required_str(checkpoint, "tag", where)
    subtag = optional_str(checkpoint, "subtag", where)
    message = optional_str(checkpoint, "message", where)
    occurred_at, flags = entry_time(checkpoint, where)
    location = ", ".join(place_parts(checkpoint, ("city", "state", "country_region"), where))
    return CarrierScan(
        event_id=stable_id(SOURCE, carrier, number, occurred_at.isoformat(), tag, subtag, message),
        source=SOURCE, carrier=carrier, tracking_number=number, status=status_for(tag, subtag),
        raw_code=optional_str(checkpoint, "raw_tag", where) or subtag or tag, raw_message=message,
        occurred_at=occurred_at, ingested_at=ingested_at,
        location=location or optional_str(checkpoint, "location", where), estimated_delivery=estimate,
        action_reason=action_reason_for(subtag, message), flags=flags,
    )
