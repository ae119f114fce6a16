from __future__ import annotations

import orjson
import pytest

from models.carriers import parse_carrier_payload
from models.errors import InvalidPayload
from models.events import PackageStatus
from tests.conftest import T0


def test_every_tracking_detail_becomes_a_canonical_scan(easypost_payload):
    scans = parse_carrier_payload("easypost", easypost_payload, T0)
    assert [s.status for s in scans] == [PackageStatus.info_received, PackageStatus.info_received,
                                         PackageStatus.in_transit, PackageStatus.out_for_delivery]
    last = scans[-1]
    assert (last.carrier, last.tracking_number) == ("usps", "9400110898825022579493")
    assert last.raw_code == "out_for_delivery/out_for_delivery"
    assert last.raw_message == "Out for Delivery"
    assert last.location == "CHARLESTON, SC"
    assert last.occurred_at.isoformat() == "2023-12-28T10:02:36+00:00"
    assert last.ingested_at == T0
    assert str(last.estimated_delivery) == "2024-01-24"


def test_resent_history_keeps_the_same_event_ids(easypost_payload):
    first = parse_carrier_payload("easypost", easypost_payload, T0)
    again = parse_carrier_payload("EasyPost", easypost_payload, T0.replace(hour=9))
    assert [s.event_id for s in first] == [s.event_id for s in again]
    assert len({s.event_id for s in first}) == len(first)


@pytest.mark.parametrize("easypost_status, ours", [
    ("pre_transit", "info_received"), ("in_transit", "in_transit"),
    ("out_for_delivery", "out_for_delivery"), ("delivered", "delivered"),
    ("available_for_pickup", "available_for_pickup"), ("return_to_sender", "returning_to_sender"),
    ("failure", "exception"), ("cancelled", "cancelled"), ("error", "unknown"), ("teleported", "unknown"),
])
def test_status_mapping_keeps_the_raw_code(easypost_payload, easypost_status, ours):
    event = orjson.loads(easypost_payload)
    event["result"]["tracking_details"][-1]["status"] = easypost_status
    scan = parse_carrier_payload("easypost", orjson.dumps(event), T0)[-1]
    assert scan.status.value == ours
    assert scan.raw_code.startswith(easypost_status)


def test_a_tracker_without_history_still_reports_its_status(easypost_payload):
    event = orjson.loads(easypost_payload)
    event["result"]["tracking_details"] = []
    (scan,) = parse_carrier_payload("easypost", orjson.dumps(event), T0)
    assert scan.status is PackageStatus.out_for_delivery


@pytest.mark.parametrize("mutate, reason, says", [
    (lambda raw: raw[:40], "malformed_json", ""),
    (lambda raw: b"[1, 2]", "malformed_json", "JSON object"),
    (lambda raw: raw.replace(b'"tracking_code"', b'"tracking_cod"'), "missing_field", "result.tracking_code"),
    (lambda raw: raw.replace(b'"tracker.updated"', b'"batch.created"'), "unsupported_event", "batch.created"),
    (lambda raw: raw.replace(b'"2023-12-28T10:02:36Z"', b'"yesterday"'), "invalid_field",
     "tracking_details[3].datetime"),
])
def test_bad_payloads_are_rejected_with_a_reason(easypost_payload, mutate, reason, says):
    with pytest.raises(InvalidPayload) as caught:
        parse_carrier_payload("easypost", mutate(easypost_payload), T0)
    assert caught.value.reason == reason
    assert says in caught.value.detail


def test_unknown_source_is_rejected_not_guessed(easypost_payload):
    with pytest.raises(InvalidPayload) as caught:
        parse_carrier_payload("carrier-pigeon", easypost_payload, T0)
    assert caught.value.reason == "unknown_source"
