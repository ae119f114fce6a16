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

Action reasons (``status_detail`` -> ``action_reason``), whatever the status says: the
package stays ``in_transit`` when EasyPost says so, and the scan also carries the reason
(values from EasyPost's ``status_detail`` list, docs.easypost.com/docs/trackers):

| status_detail                          | action_reason       |
|----------------------------------------|---------------------|
| address_correction                     | address_issue       |
| held                                   | package_held        |
| refused                                | refused             |
| damaged                                | damaged             |
| lost                                   | lost                |
| return, return_to_sender               | returned_to_sender  |
| weather_delay                          | weather             |
| delayed, missorted, transit_exception  | delayed             |
| customs_hold                           | customs             |
| delivery_exception                     | other (no reason given) |
| anything else (arrived_at_facility, label_created, arrived_at_pickup_location, ...) | none |

Times: ``datetime`` normally carries an offset (EasyPost sets the location's zone, or UTC).
One without an offset takes the zone of ``tracking_location`` (country, state) where one
can be derived, flagged; otherwise UTC, flagged ``time_zone_assumed_utc``.

Errors: every problem with the body is an ``InvalidPayload`` (malformed_json, missing_field,
invalid_field for a wrong type or an impossible time, unsupported_event); nothing else escapes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from models.carriers.json_fields import (
    Payload,
    load_object,
    objects,
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
R = ExceptionReason
ACTION_REASONS = {
    "address_correction": R.address_issue, "held": R.package_held, "refused": R.refused,
    "damaged": R.damaged, "lost": R.lost, "return": R.returned_to_sender,
    "return_to_sender": R.returned_to_sender, "weather_delay": R.weather, "delayed": R.delayed,
    "missorted": R.delayed, "transit_exception": R.delayed, "customs_hold": R.customs,
    "delivery_exception": R.other,
}


def parse(raw: Payload, ingested_at: datetime) -> list[CarrierScan]:
    """The Event's tracker history as scans; any problem is ``InvalidPayload``, nothing else."""
    event = load_object(raw)
    description = required_str(event, "description", "event")
    if description not in EVENT_TYPES:
        raise InvalidPayload("unsupported_event", f"EasyPost event {description[:64]!r} is not a tracker event")
    tracker = required_object(event, "result", "event")
    tracking_code = required_code(tracker, "tracking_code", "result")
    carrier = required_carrier(tracker, "carrier", "result")
    estimate = parse_date(tracker.get("est_delivery_date"), "result.est_delivery_date")
    details = objects(tracker.get("tracking_details"), "result.tracking_details")
    if details:
        return [_scan(detail, f"result.tracking_details[{i}]", carrier, tracking_code, estimate, ingested_at)
                for i, detail in enumerate(details)]
    # A tracker with no history yet still tells us its status.
    when = tracker.get("updated_at")
    latest = {
        "status": required_str(tracker, "status", "result"),
        "status_detail": optional_str(tracker, "status_detail", "result"),
        "datetime": when if when is not None else required(event, "created_at", "event"),
    }
    return [_scan(latest, "result", carrier, tracking_code, estimate, ingested_at)]


def entry_time(detail: dict[str, Any], where: str = "tracking_details[]") -> tuple[datetime, list[ScanFlag]]:
    """When a tracking detail was scanned (an offset-less time in the zone of its location)."""
    location = optional_object(detail, "tracking_location", where)
    loc_where = f"{where}.tracking_location"
    return scan_time(required(detail, "datetime", where), f"{where}.datetime",
                     optional_str(location, "country", loc_where), optional_str(location, "state", loc_where))


def _scan(detail: dict[str, Any], where: str, carrier: str, tracking_code: str, estimate: date | None,
          ingested_at: datetime) -> CarrierScan:
    raw_status = required_str(detail, "status", where)
    status_detail = optional_str(detail, "status_detail", where)
    location = optional_object(detail, "tracking_location", where)
    loc_where = f"{where}.tracking_location"
    occurred_at, flags = entry_time(detail, where)
    message = optional_str(detail, "message", where)
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
        location=place(location, ("city", "state", "country"), loc_where),
        estimated_delivery=estimate,
        action_reason=ACTION_REASONS.get(status_detail),
        flags=flags,
    )
