"""The generic carrier JSON, for carriers without an aggregator (source ``generic``).

One JSON object per message::

    {
      "carrier": "acme-courier",
      "tracking_number": "AC1234567",
      "estimated_delivery": "2026-11-05",            (optional)
      "events": [
        {"status": "in_transit", "code": "DEP", "message": "Departed hub",
         "occurred_at": "2026-11-03T10:00:00Z", "location": "Reno, NV"},
        {"status": "attempt_failed", "code": "NH", "message": "Nobody home",
         "occurred_at": "2026-11-04T09:00:00", "location": "Sparks, NV",
         "state": "NV", "country": "US", "reason": "recipient_unavailable"},      (last three optional)
        {"status": "available_for_pickup", "code": "PUA", "message": "Ready at locker",
         "occurred_at": "2026-11-04T09:00:00Z", "location": "Locker 12, Main St",
         "pickup_code": "4711", "pickup_deadline": "2026-11-07T20:00:00Z"}   (both optional)
      ]
    }

``status`` is one of trackline's package statuses (``info_received``, ``picked_up``,
``in_transit``, ``out_for_delivery``, ``attempt_failed``, ``available_for_pickup``,
``delivered``, ``exception``, ``returning_to_sender``, ``returned_to_sender``,
``cancelled``); anything else, or none, is ``unknown`` with ``code`` kept as the raw code.

``reason`` (optional) is why the customer must act or why an attempt failed, one of
trackline's exception reasons (``address_issue``, ``recipient_unavailable``, ``package_held``,
...; ``models.events.ExceptionReason``); it becomes the scan's ``action_reason``, an unknown
word becomes ``other``. The package status stays what ``status`` says.

Types: strings are strings; ``tracking_number``, ``code`` and ``pickup_code`` may also be
integers; ``events`` is a list of objects. Times are ISO 8601; a time without an offset is
the local time of the event's ``country`` (ISO 3166 code) and ``state``, flagged
``time_zone_from_location``, or UTC flagged ``time_zone_assumed_utc`` when no zone can be
derived from them (the free-text ``location`` is never guessed from).

Errors: every problem with the body is an ``InvalidPayload`` (malformed_json, missing_field,
invalid_field for a wrong type or an impossible time); nothing else escapes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from models.carriers.json_fields import (
    load_object,
    objects,
    optional_code,
    optional_str,
    parse_date,
    required,
    required_carrier,
    required_code,
    scan_time,
)
from models.effects import stable_id
from models.events import CarrierScan, ExceptionReason, PackageStatus

SOURCE = "generic"
STATUSES = {s.value: s for s in PackageStatus}
REASONS = {r.value: r for r in ExceptionReason}


def parse(raw: bytes, ingested_at: datetime) -> list[CarrierScan]:
    """The message's events as scans; any problem is ``InvalidPayload``, nothing else."""
    body = load_object(raw)
    carrier = required_carrier(body, "carrier", "body")
    number = required_code(body, "tracking_number", "body")
    estimate = parse_date(body.get("estimated_delivery"), "body.estimated_delivery")
    events = objects(required(body, "events", "body"), "body.events")
    return [_scan(e, f"events[{i}]", carrier, number, estimate, ingested_at) for i, e in enumerate(events)]


# Years 1970-2199, as the parser bounds them; what follows the minutes is checked by the parser only.
_ISO_DATE = r"(19[7-9][0-9]|2[01][0-9][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_ISO_TIME = rf"^{_ISO_DATE}[T ]([01][0-9]|2[0-3]):[0-5][0-9]"


def json_schema() -> dict[str, Any]:
    """The format above for producers (docs/schemas/generic-carrier.schema.json).

    Written by hand because ``parse`` reads field by field; it accepts no more than ``parse``
    does, and tests/unit/test_schemas.py holds the two to the same verdicts on samples.
    """
    text = {"type": ["string", "null"]}
    # Up to 64 bits: a JSON reader may read a longer integer as a float, which loses digits.
    number = {"type": "integer", "minimum": 0, "maximum": 2**64 - 1}
    code = {"anyOf": [{"type": "string"}, number, {"type": "null"}]}
    instant = {"type": "string", "pattern": _ISO_TIME,
               "description": "ISO 8601; without an offset it is the local time at country and state, "
                              "or UTC when they name no zone"}
    return {
        "type": "object",
        "required": ["carrier", "tracking_number", "events"],
        "properties": {
            "carrier": {"type": "string", "pattern": r"[^\s._-]",
                        "description": "the carrier's name; trackline maps known aliases to its carrier code"},
            "tracking_number": {"anyOf": [{"type": "string", "pattern": r"\S"}, number]},
            "estimated_delivery": {"anyOf": [{"type": "string", "format": "date", "pattern": f"^{_ISO_DATE}$"},
                                             {"type": "null"}]},
            "events": {"type": "array", "items": {"$ref": "#/$defs/Event"}},
        },
        "$defs": {"Event": {
            "type": "object",
            "required": ["occurred_at"],
            "properties": {
                "status": {"anyOf": [{"enum": list(STATUSES)}, {"type": ["string", "null"]}],
                           "description": "a trackline package status; anything else, or none, is unknown"},
                "code": {**code, "description": "the carrier's own code, kept as the raw code (default: status)"},
                "message": text,
                "occurred_at": instant,
                "location": {**text, "description": "free text, never used to guess a time zone"},
                "country": {**text, "description": "ISO 3166 country code"},
                "state": {**text, "description": "state or province code"},
                "reason": {"anyOf": [{"enum": list(REASONS)}, {"type": ["string", "null"]}],
                           "description": "why the customer must act or an attempt failed; anything else is other"},
                "pickup_code": code,
                "pickup_deadline": {"anyOf": [instant, {"type": "null"}]},
            },
        }},
    }


def _scan(event: dict[str, Any], where: str, carrier: str, number: str, estimate: date | None,
          ingested_at: datetime) -> CarrierScan:
    status = optional_str(event, "status", where)
    code = optional_code(event, "code", where) or status
    message = optional_str(event, "message", where)
    country, state = optional_str(event, "country", where), optional_str(event, "state", where)
    occurred_at, flags = scan_time(required(event, "occurred_at", where), f"{where}.occurred_at", country, state)
    deadline = None
    if event.get("pickup_deadline") not in (None, ""):
        deadline, deadline_flags = scan_time(event["pickup_deadline"], f"{where}.pickup_deadline", country, state)
        flags = [*flags, *(f for f in deadline_flags if f not in flags)]
    reason = optional_str(event, "reason", where)
    return CarrierScan(
        event_id=stable_id(SOURCE, carrier, number, occurred_at.isoformat(), status, code, message),
        source=SOURCE, carrier=carrier, tracking_number=number,
        status=STATUSES.get(status, PackageStatus.unknown), raw_code=code, raw_message=message,
        occurred_at=occurred_at, ingested_at=ingested_at, location=optional_str(event, "location", where),
        estimated_delivery=estimate, pickup_code=optional_code(event, "pickup_code", where),
        pickup_deadline=deadline,
        action_reason=REASONS.get(reason, ExceptionReason.other) if reason else None, flags=flags,
    )
