"""What the ingest service decides about a request, without the service: the key it files a
body under and the signature check each door applies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from models import topics
from models.ingest import DOORS, fallback_key, key_for, verify
from models.webhook_signatures import (
    AFTERSHIP_HEADER,
    EASYPOST_HEADER,
    TRACKLINE_HEADER,
    Verdict,
    aftership_signature,
    easypost_signature,
    trackline_signature,
)

PAYLOADS = Path(__file__).parents[1] / "payloads"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_each_documented_payload_is_filed_under_its_tracking_number() -> None:
    from models.carriers import parse_payload

    for source, name in [("easypost", "easypost_tracker_updated.json"), ("aftership", "aftership_tracking_update.json"),
                         ("shippo", "shippo_track_updated.json"), ("generic", "generic_carrier_events.json"),
                         ("x12-214", "x12_214_parcel_summer.edi"), ("x12-214", "x12_214_two_shipments.edi")]:
        body = (PAYLOADS / name).read_bytes()
        scans, _ = parse_payload(source, body, NOW)
        # The key is the number the adapter reads for the (first) shipment: the router keeps
        # those scans where they landed and re-keys only the others.
        assert key_for(DOORS[source], body) == scans[0].tracking_number.encode(), name


def test_a_fulfillment_event_is_filed_under_its_order() -> None:
    body = (PAYLOADS / "fulfillment_order_placed.json").read_bytes()
    assert key_for(DOORS["fc"], body) == b"ORD-000123"
    assert DOORS["fc"].topic == topics.FC_EVENTS


def test_a_body_without_a_readable_key_gets_the_source_fallback_key() -> None:
    for body in [b"", b"not json", b"[]", b'{"result": {"tracking_code": 12}}', b'{"result": {"tracking_code": ""}}',
                 b'{"result": {"tracking_code": "a\\nb"}}', b'{"result": "x"}']:
        assert key_for(DOORS["easypost"], body) == b"unkeyed:easypost", body
    assert key_for(DOORS["x12-214"], b"ISA*too short~") == fallback_key(DOORS["x12-214"])


@given(st.sampled_from(sorted(DOORS)), st.binary(max_size=400))
def test_any_bytes_get_a_key_and_never_an_exception(source: str, body: bytes) -> None:
    assert key_for(DOORS[source], body)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["result", "tracking_code", "msg", "data", "tracking_number", "order_id"]),
                        inner, max_size=3), max_leaves=12))
def test_type_confused_json_gets_a_key_and_never_an_exception(document: object) -> None:
    body = json.dumps(document).encode()  # any size of integer, as a hostile sender writes it
    for door in DOORS.values():
        assert key_for(door, body)


def test_each_door_checks_its_own_scheme_and_nothing_configured_lets_nobody_in() -> None:
    body = b'{"tracking_number": "1Z"}'
    checks = {
        "aftership": ({AFTERSHIP_HEADER: aftership_signature(body, "s")}, {}),
        "easypost": ({EASYPOST_HEADER: easypost_signature(body, "s")}, {}),
        "shippo": ({}, {"token": "s"}),
        "generic": ({TRACKLINE_HEADER: trackline_signature(body, "s", NOW)}, {}),
        "x12-214": ({TRACKLINE_HEADER: trackline_signature(body, "s", NOW)}, {}),
        "fc": ({TRACKLINE_HEADER: trackline_signature(body, "s", NOW)}, {}),
    }
    for source, (headers, query) in checks.items():
        door = DOORS[source]
        assert verify(door, body, headers, query, ["old", "s"], NOW) is Verdict.valid, source
        assert verify(door, body, headers, query, [], NOW) is Verdict.mismatch, source
        assert verify(door, body, {}, {}, ["s"], NOW) is Verdict.missing, source
    # Another door's scheme does not open this one.
    assert verify(DOORS["easypost"], body, checks["aftership"][0], {}, ["s"], NOW) is Verdict.missing
    late = NOW + timedelta(minutes=6)
    assert verify(DOORS["fc"], body, checks["fc"][0], {}, ["s"], late) is Verdict.stale
