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

Action reasons (``substatus.code`` -> ``action_reason``), whatever the status says: Shippo
sends ``address_issue`` or ``package_held`` with status TRANSIT, and the package stays in
transit while the scan carries the reason. Codes from Shippo's tracking substatus list
(docs.goshippo.com, Tracking, event definitions):

| substatus.code                             | action_reason                           |
|--------------------------------------------|-----------------------------------------|
| address_issue, package_undeliverable       | address_issue                           |
| contact_carrier, reschedule_delivery       | contact_carrier                         |
| package_held                               | package_held                            |
| delivery_attempted, notice_left            | from text and status_details (*)        |
| location_inaccessible                      | missed_delivery                         |
| package_damaged                            | damaged                                 |
| package_lost, package_disposed             | lost                                    |
| package_unclaimed                          | other (no closer reason in our set)     |
| delayed                                    | delayed                                 |
| return_to_sender, returned_to_sender       | returned_to_sender                      |
| customs_* (any customs code)               | customs                                 |
| any other code with ``action_required``    | read from code and text (``models.exception_reasons``), else other |
| any other code                             | none                                    |

(*) ``json_fields.failed_attempt_reason``: "not available", "no one", ... -> recipient_unavailable;
"closed" -> business_closed; "address" -> address_issue; "refused"; "weather"; else missed_delivery.

Times: ``status_date`` without an offset takes the zone of the entry's ``location``
(country, state) where one can be derived, flagged; otherwise UTC, flagged
``time_zone_assumed_utc``.

Errors: every problem with the body is an ``InvalidPayload`` (malformed_json, missing_field,
invalid_field for a wrong type or an impossible time, unsupported_event); nothing else escapes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from models.carriers.json_fields import (
    Payload,
    failed_attempt_reason,
    load_object,
    objects,
    optional_bool,
    optional_object,
    optional_str,
    parse_date,
    place,
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
from models.exception_reasons import exception_reason

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
R = ExceptionReason
ACTION_REASONS = {
    "address_issue": R.address_issue, "package_undeliverable": R.address_issue,
    "contact_carrier": R.contact_carrier, "reschedule_delivery": R.contact_carrier,
    "package_held": R.package_held, "location_inaccessible": R.missed_delivery,
    "package_damaged": R.damaged, "package_lost": R.lost, "package_disposed": R.lost,
    "package_unclaimed": R.other, "delayed": R.delayed,
    "return_to_sender": R.returned_to_sender, "returned_to_sender": R.returned_to_sender,
}
ATTEMPT_CODES = {"delivery_attempted", "notice_left"}


def status_for(status: str, substatus: str) -> PackageStatus:
    if status in ("TRANSIT", "FAILURE") and substatus in SUBSTATUS_MAP:
        return SUBSTATUS_MAP[substatus]
    return STATUS_MAP.get(status, PackageStatus.unknown)


def action_reason_for(status: str, code: str, text: str, action_required: bool) -> ExceptionReason | None:
    if code in ACTION_REASONS:
        return ACTION_REASONS[code]
    if code in ATTEMPT_CODES:
        # "delivery_attempted" does not say why: the carrier's words may (nobody home, closed).
        return failed_attempt_reason(text)
    if code.startswith("customs"):
        return R.customs
    return exception_reason(f"{status}/{code}", text) if action_required else None


def parse(raw: Payload, ingested_at: datetime) -> list[CarrierScan]:
    """The track's history as scans; any problem is ``InvalidPayload``, nothing else."""
    body = load_object(raw)
    event = required_str(body, "event", "body")
    if event != "track_updated":
        raise InvalidPayload("unsupported_event", f"Shippo event {event[:64]!r} is not track_updated")
    track = required_object(body, "data", "body")
    number = required_code(track, "tracking_number", "data")
    carrier = required_carrier(track, "carrier", "data")
    estimate = parse_date(track.get("eta"), "data.eta")
    history = objects(track.get("tracking_history"), "data.tracking_history")
    if history:
        return [_scan(entry, f"data.tracking_history[{i}]", carrier, number, estimate, ingested_at)
                for i, entry in enumerate(history)]
    latest = required_object(track, "tracking_status", "data")
    return [_scan(latest, "data.tracking_status", carrier, number, estimate, ingested_at)]


def entry_time(entry: dict[str, Any], where: str = "tracking_history[]") -> tuple[datetime, list[ScanFlag]]:
    """When a history entry was scanned (an offset-less time in the zone of its location)."""
    location = optional_object(entry, "location", where)
    loc_where = f"{where}.location"
    return scan_time(required(entry, "status_date", where), f"{where}.status_date",
                     optional_str(location, "country", loc_where), optional_str(location, "state", loc_where))


def _scan(entry: dict[str, Any], where: str, carrier: str, number: str, estimate: date | None,
          ingested_at: datetime) -> CarrierScan:
    status = required_str(entry, "status", where)
    substatus = optional_object(entry, "substatus", where)
    sub_where = f"{where}.substatus"
    code = optional_str(substatus, "code", sub_where)
    text = optional_str(substatus, "text", sub_where)
    action_required = optional_bool(substatus, "action_required", sub_where)
    location = optional_object(entry, "location", where)
    loc_where = f"{where}.location"
    occurred_at, flags = entry_time(entry, where)
    message = optional_str(entry, "status_details", where)
    return CarrierScan(
        event_id=stable_id(SOURCE, carrier, number, occurred_at.isoformat(), status, code, message),
        source=SOURCE, carrier=carrier, tracking_number=number, status=status_for(status, code),
        raw_code=f"{status}/{code}" if code else status, raw_message=message,
        occurred_at=occurred_at, ingested_at=ingested_at,
        location=place(location, ("city", "state", "country"), loc_where), estimated_delivery=estimate,
        action_reason=action_reason_for(status, code, f"{text} {message}", action_required), flags=flags,
    )
