"""Details a customer must act on ride on the scan (``action_reason``); the carrier's status stays.

Also: a carrier time without an offset is read in the zone of the scan's place, and flagged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from models.carriers import parse_carrier_payload
from models.events import ExceptionReason, PackageStatus, ScanFlag
from tests.conftest import PAYLOADS, T0

S, R = PackageStatus, ExceptionReason


def documented(name: str) -> dict[str, Any]:
    return orjson.loads((PAYLOADS / name).read_bytes())


def easypost(status: str, status_detail: str, **detail: Any) -> bytes:
    event = documented("easypost_tracker_updated.json")
    event["result"]["tracking_details"] = [{
        "object": "TrackingDetail", "message": "Address correction needed", "status": status,
        "status_detail": status_detail, "datetime": "2024-01-23T10:00:00Z",
        "tracking_location": {"city": "HOUSTON", "state": "TX", "country": "US", "zip": "77063"}, **detail}]
    return orjson.dumps(event)


def aftership(tag: str, subtag: str, message: str = "", **checkpoint: Any) -> bytes:
    body = documented("aftership_tracking_update.json")
    body["msg"]["checkpoints"] = [{"checkpoint_time": "2024-01-23T17:12:00-05:00", "tag": tag, "subtag": subtag,
                                   "message": message, "city": "Columbus", "state": "OH",
                                   "country_region": "USA", **checkpoint}]
    return orjson.dumps(body)


def shippo(status: str, code: str, action_required: bool, text: str = "", **entry: Any) -> bytes:
    body = documented("shippo_track_updated.json")
    body["data"]["tracking_history"] = [{
        "status": status, "substatus": {"code": code, "text": text, "action_required": action_required},
        "status_details": text, "status_date": "2024-01-24T18:00:00Z",
        "location": {"city": "Portland", "state": "OR", "zip": "97201", "country": "US"}, **entry}]
    return orjson.dumps(body)


def only(source: str, raw: bytes):
    (scan,) = parse_carrier_payload(source, raw, T0)
    return scan


# --- EasyPost ------------------------------------------------------------------------------

def test_easypost_address_correction_keeps_in_transit_and_asks_for_the_address():
    scan = only("easypost", easypost("in_transit", "address_correction"))
    assert (scan.status, scan.action_reason) == (S.in_transit, R.address_issue)
    assert scan.raw_code == "in_transit/address_correction"


@pytest.mark.parametrize("status, detail, ours, reason", [
    ("in_transit", "arrived_at_facility", S.in_transit, None),
    ("available_for_pickup", "arrived_at_pickup_location", S.available_for_pickup, None),
    ("in_transit", "weather_delay", S.in_transit, R.weather),
    ("in_transit", "held", S.in_transit, R.package_held),
    ("return_to_sender", "return", S.returning_to_sender, R.returned_to_sender),
    ("failure", "refused", S.exception, R.refused),
    ("failure", "delivery_exception", S.exception, R.other),
])
def test_easypost_status_details(status, detail, ours, reason):
    scan = only("easypost", easypost(status, detail))
    assert (scan.status, scan.action_reason) == (ours, reason)


# --- AfterShip -----------------------------------------------------------------------------

@pytest.mark.parametrize("tag, subtag, message, ours, reason", [
    ("Exception", "Exception_007", "Incorrect address", S.exception, R.address_issue),
    ("AttemptFail", "AttemptFail_002", "", S.attempt_failed, R.recipient_unavailable),
    ("AttemptFail", "AttemptFail_003", "", S.attempt_failed, R.business_closed),
    ("AttemptFail", "AttemptFail_001", "Customer was not available when UPS attempted delivery.",
     S.attempt_failed, R.recipient_unavailable),
    ("AttemptFail", "AttemptFail_001", "Delivery attempted", S.attempt_failed, R.missed_delivery),
    ("Exception", "Exception_006", "Duties due", S.exception, R.payment_due),
    ("Exception", "Exception_004", "", S.exception, R.customs),
    ("Exception", "Exception_010", "", S.returning_to_sender, R.returned_to_sender),
    ("InTransit", "InTransit_007", "Departed from Facility", S.in_transit, None),
])
def test_aftership_subtags_carry_the_reason_and_keep_the_tag(tag, subtag, message, ours, reason):
    scan = only("aftership", aftership(tag, subtag, message))
    assert (scan.status, scan.action_reason) == (ours, reason)


def test_aftership_documented_attempt_says_nobody_was_there():
    failed = parse_carrier_payload("aftership", (PAYLOADS / "aftership_tracking_update.json").read_bytes(), T0)[1]
    assert (failed.status, failed.action_reason) == (S.attempt_failed, R.recipient_unavailable)


# --- Shippo --------------------------------------------------------------------------------

def test_shippo_address_issue_in_transit_keeps_transit_and_asks_for_the_address():
    scan = only("shippo", shippo("TRANSIT", "address_issue", True, "Address issue"))
    assert (scan.status, scan.action_reason) == (S.in_transit, R.address_issue)
    assert scan.raw_code == "TRANSIT/address_issue"


@pytest.mark.parametrize("status, code, action_required, text, ours, reason", [
    ("TRANSIT", "package_held", True, "Held at facility", S.in_transit, R.package_held),
    ("TRANSIT", "contact_carrier", True, "", S.in_transit, R.contact_carrier),
    ("FAILURE", "delivery_attempted", False, "Business closed", S.attempt_failed, R.business_closed),
    ("TRANSIT", "delivery_attempted", True, "Recipient not available", S.attempt_failed, R.recipient_unavailable),
    ("TRANSIT", "notice_left", False, "Notice left", S.attempt_failed, R.missed_delivery),
    ("FAILURE", "package_damaged", False, "", S.exception, R.damaged),
    ("FAILURE", "package_undeliverable", True, "", S.exception, R.address_issue),
    ("TRANSIT", "customs_hold", True, "Held by customs", S.in_transit, R.customs),
    ("TRANSIT", "other", True, "Contact us about your delivery", S.in_transit, R.other),
    ("TRANSIT", "package_departed", False, "Departed", S.in_transit, None),
    ("TRANSIT", "other", False, "Something", S.in_transit, None),
])
def test_shippo_substatus_codes(status, code, action_required, text, ours, reason):
    scan = only("shippo", shippo(status, code, action_required, text))
    assert (scan.status, scan.action_reason) == (ours, reason)


# --- generic -------------------------------------------------------------------------------

def test_generic_events_may_name_a_reason():
    scans = parse_carrier_payload("generic", (PAYLOADS / "generic_carrier_events.json").read_bytes(), T0)
    assert [(s.status, s.action_reason) for s in scans] == [
        (S.in_transit, None), (S.attempt_failed, R.recipient_unavailable), (S.available_for_pickup, None)]


# --- times without an offset ---------------------------------------------------------------

def test_aftership_local_time_in_a_known_state_is_localised_and_flagged():
    scan = only("aftership", aftership("InTransit", "InTransit_003", checkpoint_time="2026-07-01T09:00:00",
                                       state="CA", city="Los Angeles"))
    assert scan.occurred_at == datetime(2026, 7, 1, 16, 0, tzinfo=UTC)  # PDT is UTC-7
    assert scan.flags == [ScanFlag.time_zone_from_location]


def test_aftership_local_time_without_a_derivable_zone_is_utc_and_flagged():
    scan = only("aftership", aftership("InTransit", "InTransit_003", checkpoint_time="2026-07-01T09:00:00",
                                       state=None, city=None, country_region=None))
    assert scan.occurred_at == datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    assert scan.flags == [ScanFlag.time_zone_assumed_utc]


def test_times_with_an_offset_or_epoch_seconds_are_kept_unflagged():
    with_offset = only("aftership", aftership("InTransit", "InTransit_003"))
    assert with_offset.occurred_at.isoformat() == "2024-01-23T17:12:00-05:00" and with_offset.flags == []
    epoch = only("aftership", aftership("InTransit", "InTransit_003", checkpoint_time=1782896400))
    assert epoch.occurred_at == datetime(2026, 7, 1, 9, 0, tzinfo=UTC) and epoch.flags == []


@pytest.mark.parametrize("source, raw", [
    ("easypost", easypost("in_transit", "arrived_at_facility", datetime="2026-07-01T09:00:00",
                          tracking_location={"city": "Seattle", "state": "WA", "country": "US"})),
    ("shippo", shippo("TRANSIT", "package_arrived", False, status_date="2026-07-01T09:00:00",
                      location={"city": "Seattle", "state": "WA", "country": "US"})),
])
def test_every_json_format_localises_times_without_an_offset(source, raw):
    scan = only(source, raw)
    assert scan.occurred_at == datetime(2026, 7, 1, 16, 0, tzinfo=UTC)
    assert scan.flags == [ScanFlag.time_zone_from_location]
