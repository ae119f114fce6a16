"""AfterShip and Shippo webhooks, as their documentation shows them, in trackline's terms."""

from __future__ import annotations

import orjson
import pytest

from models.carriers import parse_carrier_payload
from models.errors import InvalidPayload
from models.events import PackageStatus
from tests.conftest import PAYLOADS, T0

S = PackageStatus


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def test_aftership_checkpoints_become_scans_with_carrier_time_and_raw_codes():
    scans = parse_carrier_payload("aftership", payload("aftership_tracking_update.json"), T0)
    assert [s.status for s in scans] == [S.in_transit, S.attempt_failed, S.returning_to_sender]
    failed = scans[1]
    assert (failed.carrier, failed.tracking_number, failed.raw_code) == ("ups", "1Z12345E0205271688", "48")
    assert failed.occurred_at.isoformat() == "2024-01-23T17:12:00-05:00"
    assert failed.location == "Columbus, OH, USA"
    assert str(failed.estimated_delivery) == "2024-01-25"
    assert failed.ingested_at == T0


@pytest.mark.parametrize("tag, subtag, ours", [
    ("Pending", "Pending_001", S.info_received), ("InfoReceived", "InfoReceived_001", S.info_received),
    ("OutForDelivery", "OutForDelivery_003", S.out_for_delivery), ("Delivered", "Delivered_001", S.delivered),
    ("AvailableForPickup", "AvailableForPickup_001", S.available_for_pickup),
    ("Exception", "Exception_013", S.exception), ("Exception", "Exception_011", S.returned_to_sender),
    ("Expired", "Expired_001", S.unknown), ("Teleported", "", S.unknown),
])
def test_aftership_tag_mapping(tag, subtag, ours):
    body = orjson.loads(payload("aftership_tracking_update.json"))
    body["msg"]["checkpoints"] = [{"checkpoint_time": "2024-01-23T17:12:00Z", "tag": tag, "subtag": subtag}]
    (scan,) = parse_carrier_payload("aftership", orjson.dumps(body), T0)
    assert scan.status is ours
    assert scan.raw_code == (subtag or tag)


def test_shippo_history_becomes_scans_and_keeps_status_and_substatus():
    scans = parse_carrier_payload("shippo", payload("shippo_track_updated.json"), T0)
    assert [s.status for s in scans] == [S.info_received, S.in_transit, S.out_for_delivery]
    latest = scans[-1]
    assert latest.raw_code == "TRANSIT/out_for_delivery"
    assert (latest.carrier, latest.location) == ("usps", "Portland, OR, US")
    assert str(latest.estimated_delivery) == "2024-01-25"


@pytest.mark.parametrize("status, code, ours", [
    ("DELIVERED", "delivered", S.delivered), ("RETURNED", "", S.returned_to_sender),
    ("FAILURE", "package_lost", S.exception), ("FAILURE", "delivery_attempted", S.attempt_failed),
    ("TRANSIT", "pickup_available", S.available_for_pickup), ("TRANSIT", "return_to_sender", S.returning_to_sender),
    ("UNKNOWN", "", S.unknown), ("LOST_IN_SPACE", "", S.unknown),
])
def test_shippo_status_mapping(status, code, ours):
    body = orjson.loads(payload("shippo_track_updated.json"))
    body["data"]["tracking_history"] = [{"status": status, "substatus": {"code": code},
                                         "status_date": "2024-01-25T07:41:00Z"}]
    (scan,) = parse_carrier_payload("shippo", orjson.dumps(body), T0)
    assert scan.status is ours
    assert scan.raw_code.startswith(status)


@pytest.mark.parametrize("source, name, mutate, reason", [
    ("aftership", "aftership_tracking_update.json", lambda b: b.replace(b'"tracking_update"', b'"edd_revise"'),
     "unsupported_event"),
    ("aftership", "aftership_tracking_update.json", lambda b: b.replace(b'"slug": "ups",\n', b""), "missing_field"),
    ("shippo", "shippo_track_updated.json", lambda b: b.replace(b'"tracking_number"', b'"tracking_nr"'),
     "missing_field"),
    ("shippo", "shippo_track_updated.json", lambda b: b[:100], "malformed_json"),
])
def test_bad_aggregator_payloads_are_rejected_with_a_reason(source, name, mutate, reason):
    with pytest.raises(InvalidPayload) as caught:
        parse_carrier_payload(source, mutate(payload(name)), T0)
    assert caught.value.reason == reason


def test_resent_webhooks_keep_their_event_ids():
    for source, name in (("aftership", "aftership_tracking_update.json"), ("shippo", "shippo_track_updated.json")):
        first = [s.event_id for s in parse_carrier_payload(source, payload(name), T0)]
        assert first == [s.event_id for s in parse_carrier_payload(source, payload(name), T0.replace(year=2027))]


GENERIC = {"carrier": "Acme Courier", "tracking_number": "AC1234567", "estimated_delivery": "2026-11-05",
           "events": [{"status": "picked_up", "code": "PU", "message": "Picked up",
                       "occurred_at": "2026-11-03T08:00:00Z"},
                      {"status": "", "code": "XZ9", "message": "Sorting delay", "occurred_at": "2026-11-03T20:00:00Z",
                       "location": "Reno, NV"}]}


def test_generic_carrier_json_maps_known_statuses_and_keeps_unknown_codes():
    scans = parse_carrier_payload("generic", orjson.dumps(GENERIC), T0)
    assert [(s.status, s.raw_code) for s in scans] == [(S.picked_up, "PU"), (S.unknown, "XZ9")]
    assert scans[1].carrier == "acmecourier" and scans[1].location == "Reno, NV"
    assert str(scans[0].estimated_delivery) == "2026-11-05"


def test_generic_carrier_json_without_events_is_rejected():
    with pytest.raises(InvalidPayload) as caught:
        parse_carrier_payload("generic", orjson.dumps({**GENERIC, "events": None}), T0)
    assert caught.value.reason == "missing_field"


def test_x12_214_interchange_with_two_shipments():
    scans = parse_carrier_payload("x12-214", payload("x12_214_two_shipments.edi"), T0)
    assert [(s.tracking_number, s.status, s.raw_code) for s in scans] == [
        ("PRO7731001", S.out_for_delivery, "X6/NS"), ("PRO7731001", S.delivered, "D1/NS"),
        ("PRO7731002", S.attempt_failed, "AH/A1")]
    assert scans[1].occurred_at.isoformat() == "2026-11-03T13:40:00-05:00"
    assert scans[2].occurred_at.isoformat() == "2026-11-03T16:10:00-06:00"
    assert (scans[0].carrier, scans[0].location) == ("odfl", "COLUMBUS, OH, US")


@pytest.mark.parametrize("mutate, reason", [
    (lambda b: b[: b.index(b"SE*6")], "malformed_x12"),  # truncated: no IEA
    (lambda b: b"GS*QM*ODFL~", "malformed_x12"),  # no ISA
    # Every shipment broken: nothing to return, the first rejection is raised.
    (lambda b: b.replace(b"ST*214*", b"ST*210*"), "unsupported_event"),
    (lambda b: b.replace(b"20261103*", b"2026-11-03*"), "invalid_field"),
])
def test_bad_x12_is_rejected_with_a_reason(mutate, reason):
    with pytest.raises(InvalidPayload) as caught:
        parse_carrier_payload("x12-214", mutate(payload("x12_214_two_shipments.edi")), T0)
    assert caught.value.reason == reason


@pytest.mark.parametrize("mutate, reason", [
    (lambda b: b.replace(b"ST*214*0002~", b"ST*210*0002~"), "unsupported_event"),
    (lambda b: b.replace(b"20261103*1610", b"2026-11-03*1610"), "invalid_field"),
])
def test_a_bad_x12_shipment_is_rejected_alone(mutate, reason):
    from models.carriers.x12_214 import parse_parts

    scans, rejected = parse_parts(mutate(payload("x12_214_two_shipments.edi")), T0)
    assert {s.tracking_number for s in scans} == {"PRO7731001"}
    ((error, part),) = rejected
    assert error.reason == reason
    assert part.startswith(b"ST*21") and part.rstrip().endswith(b"SE*6*0002~")


def test_generic_carrier_json_carries_pickup_code_and_deadline():
    body = {**GENERIC, "events": [{"status": "available_for_pickup", "code": "PUA", "message": "Ready",
                                   "occurred_at": "2026-11-04T09:00:00Z", "location": "Locker 12",
                                   "pickup_code": "4711", "pickup_deadline": "2026-11-07T20:00:00Z"}]}
    (ready,) = parse_carrier_payload("generic", orjson.dumps(body), T0)
    assert (ready.status, ready.pickup_code) == (S.available_for_pickup, "4711")
    assert ready.pickup_deadline.isoformat() == "2026-11-07T20:00:00+00:00"


@pytest.mark.parametrize(("raw_code", "message", "reason"), [
    ("Exception_013", "", "lost"),  # AfterShip sub-status
    ("Exception_007", "", "address_issue"),
    ("failure/damaged", "", "damaged"),  # EasyPost status/status_detail
    ("in_transit/weather_delay", "", "weather"),
    ("FAILURE/package_undeliverable", "", "address_issue"),  # Shippo status/substatus
    ("A7/BS", "", "refused"),  # X12 214 AT701/AT702
    ("SD/AO", "", "weather"),  # the reason is more specific than the status
    ("SD", "", "delayed"),
    ("EXC", "Held at customs for inspection", "customs"),  # generic: read the words
    ("EXC", "Something happened", "other"),
])
def test_exception_reasons_from_each_formats_codes(raw_code, message, reason):
    from models.exception_reasons import exception_reason
    assert exception_reason(raw_code, message).value == reason
