"""X12 214: AT707 time codes, AT702 reasons, and one bad shipment among good ones.

Expected instants are worked out from the standard and the 2026 US calendar, not from the
code: daylight saving starts Sunday 8 March 2026 at 02:00 and ends Sunday 1 November at 02:00.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.carriers.x12_214 import parse, parse_parts
from models.errors import InvalidPayload
from models.events import ExceptionReason, PackageStatus, ScanFlag
from models.exception_reasons import CUSTOMER_WORDS, exception_reason
from tests.conftest import PAYLOADS, T0

R, S, F = ExceptionReason, PackageStatus, ScanFlag
# 106 characters: "*" separates elements (index 3), "~" ends segments (index 105).
ISA = "ISA*00*          *00*          *02*ODFL           *ZZ*TRACKLINE      *261103*1015*U*00401*000000101*0*P*>~"


def interchange(*transactions: list[str]) -> bytes:
    """Real X12 text: each transaction wrapped in ST/SE with its segment count."""
    body = []
    for number, segments in enumerate(transactions, 1):
        control = f"{number:04d}"
        transaction = [f"ST*214*{control}", *segments]
        body += [*transaction, f"SE*{len(transaction) + 1}*{control}"]
    segments = ["GS*QM*ODFL*TRACKLINE*20261103*1015*101*X*004010", *body, f"GE*{len(transactions)}*101",
                "IEA*1*000000101"]
    return (ISA + "\n" + "~\n".join(segments) + "~\n").encode()


def shipment(at7: str, ms1: str | None = None, pro: str = "PRO1") -> list[str]:
    return [f"B10*{pro}*SHP-1*ODFL", "LX*1", at7, *([ms1] if ms1 else [])]


def one_scan(at7: str, ms1: str | None = None):
    (scan,) = parse(interchange(shipment(at7, ms1)), T0)
    return scan


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("at7, ms1, instant, offset, flags", [
    # CT in Memphis the day before and the day after the spring-forward.
    ("AT7*X4*NS***20260307*1000*CT", "MS1*MEMPHIS*TN*US", utc(2026, 3, 7, 16), "-06:00", []),
    ("AT7*X4*NS***20260309*1000*CT", "MS1*MEMPHIS*TN*US", utc(2026, 3, 9, 15), "-05:00", []),
    # Summer Mountain time: Colorado keeps daylight saving, Arizona does not.
    ("AT7*X4*NS***20260715*0900*MT", "MS1*DENVER*CO*US", utc(2026, 7, 15, 15), "-06:00", []),
    ("AT7*X4*NS***20260715*0900*MT", "MS1*PHOENIX*AZ*US", utc(2026, 7, 15, 16), "-07:00", []),
    # Indiana: Eastern for most of it, Central in the corners; both keep daylight saving.
    ("AT7*X4*NS***20260715*0900*ET", "MS1*INDIANAPOLIS*IN*US", utc(2026, 7, 15, 13), "-04:00", []),
    ("AT7*X4*NS***20260715*0900*CT", "MS1*GARY*IN*US", utc(2026, 7, 15, 14), "-05:00", []),
    # Idaho: Mountain in Boise, Pacific up north.
    ("AT7*X4*NS***20260715*0900*MT", "MS1*BOISE*ID*US", utc(2026, 7, 15, 15), "-06:00", []),
    ("AT7*X4*NS***20260715*0900*PT", "MS1*COEUR D ALENE*ID*US", utc(2026, 7, 15, 16), "-07:00", []),
    # Hawaii-Aleutian time: Hawaii has no daylight saving, the Aleutians do.
    ("AT7*X4*NS***20260715*0900*HT", "MS1*HONOLULU*HI*US", utc(2026, 7, 15, 19), "-10:00", []),
    ("AT7*X4*NS***20260715*0900*HT", "MS1*ADAK*AK*US", utc(2026, 7, 15, 18), "-09:00", []),
    # A local-time code without MS1 takes the code's own zone.
    ("AT7*X4*NS***20260115*0900*NT", None, utc(2026, 1, 15, 12, 30), "-03:30", []),
    # The repeated 01:30 on the fall-back day is the first one (still daylight time).
    ("AT7*X4*NS***20261101*0130*CT", "MS1*CHICAGO*IL*US", utc(2026, 11, 1, 6, 30), "-05:00",
     [F.time_repeated_hour]),
    # 02:30 on the spring-forward day does not exist: moved forward to 03:30 daylight time.
    ("AT7*X4*NS***20260308*0230*CT", "MS1*CHICAGO*IL*US", utc(2026, 3, 8, 8, 30), "-05:00",
     [F.time_nonexistent]),
    # Fixed offsets ignore the season.
    ("AT7*X4*NS***20260115*1200*ED", "MS1*BOSTON*MA*US", utc(2026, 1, 15, 16), "-04:00", []),
    ("AT7*X4*NS***20260715*1200*ES", None, utc(2026, 7, 15, 17), "-05:00", []),
    ("AT7*X4*NS***20260715*1200*NS", None, utc(2026, 7, 15, 15, 30), "-03:30", []),
    ("AT7*X4*NS***20260715*1200*AS", None, utc(2026, 7, 15, 21), "-09:00", []),
    ("AT7*X4*NS***20260715*1200*20", None, utc(2026, 7, 15, 17), "-05:00", []),  # ISO M05
    ("AT7*X4*NS***20260715*1200*03", None, utc(2026, 7, 15, 9), "+03:00", []),  # ISO P03
    ("AT7*X4*NS***20260715*1200*UT", "MS1*DENVER*CO*US", utc(2026, 7, 15, 12), "+00:00", []),
    ("AT7*X4*NS***20260715*1200*GM", None, utc(2026, 7, 15, 12), "+00:00", []),
    # LT is the clock of the MS1 place.
    ("AT7*X4*NS***20260715*0900*LT", "MS1*SEATTLE*WA*US", utc(2026, 7, 15, 16), "-07:00",
     [F.time_zone_from_location]),
    ("AT7*X4*NS***20260115*0900*LT", "MS1*TORONTO*ON*CA", utc(2026, 1, 15, 14), "-05:00",
     [F.time_zone_from_location]),
    ("AT7*X4*NS***20260715*0900", "MS1*HAMBURG**DE", utc(2026, 7, 15, 7), "+02:00", [F.time_zone_from_location]),
    # An unknown code and no place to take a zone from: read as UTC, and said so.
    ("AT7*X4*NS***20260715*0900*ZZ", None, utc(2026, 7, 15, 9), "+00:00", [F.time_zone_assumed_utc]),
    ("AT7*X4*NS***20260715*0900*LT", "MS1*SOMEWHERE", utc(2026, 7, 15, 9), "+00:00", [F.time_zone_assumed_utc]),
])
def test_at707_time_codes(at7, ms1, instant, offset, flags):
    scan = one_scan(at7, ms1)
    assert scan.occurred_at == instant
    assert scan.occurred_at.isoformat().endswith(offset)
    assert scan.flags == flags


def test_seconds_and_hundredths_are_kept():
    scan = one_scan("AT7*X4*NS***20260715*09001525*UT")
    assert scan.occurred_at == datetime(2026, 7, 15, 9, 0, 15, 250_000, tzinfo=UTC)


@pytest.mark.parametrize("at7, status, reason", [
    ("AT7*AH*AQ***20261103*1610*CT", S.attempt_failed, R.recipient_unavailable),
    ("AT7*AH*A1***20261103*1610*CT", S.attempt_failed, R.missed_delivery),
    ("AT7*AP*A2***20261103*1610*CT", S.attempt_failed, R.address_issue),
    ("AT7*AH*B1***20261103*1610*CT", S.attempt_failed, R.business_closed),
    ("AT7*X6*AO***20261103*0700*CT", S.out_for_delivery, R.weather),  # the status stays, the reason rides along
    ("AT7*X4*AS***20261103*0700*CT", S.in_transit, R.customs),
    ("AT7*X4*B4***20261103*0700*CT", S.in_transit, R.payment_due),
    ("AT7*X4*C1***20261103*0700*CT", S.in_transit, R.package_held),
    ("AT7*A7*BS***20261103*0700*CT", S.exception, R.refused),
    ("AT7*A3*BT***20261103*0700*CT", S.returned_to_sender, R.returned_to_sender),
    ("AT7*SD*AI***20261103*0700*CT", S.exception, R.delayed),
    ("AT7*SD*Q7***20261103*0700*CT", S.exception, R.delayed),  # unknown reason on a delay
    ("AT7*AH*Q7***20261103*0700*CT", S.attempt_failed, R.other),  # unknown reason elsewhere
    ("AT7*D1*NS***20261103*0700*CT", S.delivered, None),
    ("AT7*D1*A3***20261103*0700*CT", S.delivered, None),  # indirect delivery: nothing to act on
    ("AT7*X4****20261103*0700*CT", S.in_transit, None),
])
def test_at702_reason_becomes_the_action_reason(at7, status, reason):
    scan = one_scan(at7, "MS1*MEMPHIS*TN*US")
    assert (scan.status, scan.action_reason) == (status, reason)
    assert scan.raw_code == "/".join(at7.split("*")[1:3]).rstrip("/")


@pytest.mark.parametrize("raw_code, reason", [
    ("AH/AQ", R.recipient_unavailable), ("SD/AO", R.weather), ("A7/NS", R.refused), ("A9/Q7", R.damaged),
    ("SD/Q7", R.delayed), ("A3", R.returned_to_sender),
    ("SD/A3", R.delayed),  # AT702 A3 is "indirect delivery", not the AT701 "returned to shipper"
])
def test_exception_reason_reads_x12_codes_by_position(raw_code, reason):
    assert exception_reason(raw_code, "") is reason


def test_one_broken_shipment_among_three_leaves_the_other_two():
    raw = (PAYLOADS / "x12_214_three_shipments_one_broken.edi").read_bytes()
    scans, rejected = parse_parts(raw, T0)
    assert [(s.tracking_number, s.status, s.action_reason) for s in scans] == [
        ("PRO8841001", S.out_for_delivery, None), ("PRO8841003", S.attempt_failed, R.recipient_unavailable)]
    ((error, part),) = rejected
    assert error.reason == "missing_field"
    assert part.startswith(b"ST*214*0002~") and part.endswith(b"SE*6*0002~")
    assert b"PRO88410" not in part
    assert parse(raw, T0) == scans


@pytest.mark.parametrize("broken, reason", [
    ("AT7*X4*NS***20260230*1000*CT", "invalid_field"),  # 30 February
    ("AT7*X4*NS***20261103*2460*CT", "invalid_field"),
    ("AT7*X4*NS***99991231*2300*CT", "invalid_field"),  # no scan is that far away
    ("AT7*X4*NS****1000*CT", "missing_field"),
])
def test_an_impossible_at7_date_rejects_only_its_transaction(broken, reason):
    raw = interchange(shipment("AT7*X4*NS***20261103*1000*CT", pro="GOOD1"), shipment(broken, pro="BAD"),
                      shipment("AT7*D1*NS***20261103*1400*CT", pro="GOOD2"))
    scans, rejected = parse_parts(raw, T0)
    assert [s.tracking_number for s in scans] == ["GOOD1", "GOOD2"]
    ((error, part),) = rejected
    assert error.reason == reason
    assert b"B10*BAD*" in part and part.startswith(b"ST*214*0002")


def test_a_wrong_segment_count_rejects_its_transaction_as_malformed():
    raw = interchange(shipment("AT7*X4*NS***20261103*1000*CT", pro="GOOD"),
                      shipment("AT7*X4*NS***20261103*1000*CT", pro="CUT"))
    raw = raw.replace(b"SE*5*0002", b"SE*9*0002")
    scans, rejected = parse_parts(raw, T0)
    assert [s.tracking_number for s in scans] == ["GOOD"]
    assert [e.reason for e, _ in rejected] == ["malformed_x12"]


def test_a_transaction_cut_short_by_the_next_one_is_rejected_alone():
    raw = interchange(shipment("AT7*X4*NS***20261103*1000*CT", pro="CUT"),
                      shipment("AT7*X4*NS***20261103*1000*CT", pro="GOOD"))
    raw = raw.replace(b"SE*5*0001~\n", b"")
    scans, rejected = parse_parts(raw, T0)
    assert [s.tracking_number for s in scans] == ["GOOD"]
    ((error, part),) = rejected
    assert error.reason == "malformed_x12" and b"B10*CUT*" in part and b"GOOD" not in part


def test_appointment_only_at7s_are_not_statuses():
    raw = interchange(shipment("AT7***AB*NA*20261104*0900*CT"))
    with pytest.raises(InvalidPayload) as caught:
        parse(raw, T0)
    assert caught.value.reason == "unsupported_event"


@pytest.mark.parametrize("raw", [
    b"", b"   \n", b"GS*QM*ODFL~", ISA.encode(), ISA.encode() + b"GS*QM*ODFL*TRACKLINE~ST*214*0001~",
    ISA.replace("~", "*").encode() + b"IEA*1~",  # terminator equals the element separator
    ISA.replace("*00*          *00*", "*00*        *00*").encode() + b"IEA*1~",  # ISA not 106 characters
])
def test_interchange_problems_raise_malformed_x12(raw):
    with pytest.raises(InvalidPayload) as caught:
        parse_parts(raw, T0)
    assert caught.value.reason == "malformed_x12"


def test_concatenated_interchanges_are_all_read():
    first = interchange(shipment("AT7*X4*NS***20261103*1000*CT", pro="A"))
    second = interchange(shipment("AT7*X4*NS***20261103*1100*CT", pro="B"))
    assert [s.tracking_number for s in parse(first + second, T0)] == ["A", "B"]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=400),
                 st.binary(max_size=300).map(lambda tail: ISA.encode() + tail),
                 st.lists(st.sampled_from(["ST*214*0001", "SE*3*0001", "B10*P*S*UPSN", "LX*1", "MS1*X*AZ*US",
                                           "AT7*X6*AQ***20261108*0130*MT", "AT7*X6*Q7***20260308*0230*LT",
                                           "GE*1*1", "IEA*1*1", "GS*QM", "AT7*A*B*C*D*E*F*G"]), max_size=12)
                 .map(lambda segs: (ISA + "~".join(segs) + "~").encode())))
def test_any_bytes_give_scans_rejections_or_invalid_payload(raw):
    try:
        scans, rejected = parse_parts(raw, T0)
    except InvalidPayload:
        return
    assert all(isinstance(e, InvalidPayload) and isinstance(part, bytes) for e, part in rejected)
    assert all(s.occurred_at.tzinfo is not None for s in scans)


def test_every_exception_reason_has_customer_words():
    assert set(CUSTOMER_WORDS) == set(ExceptionReason)
    for what, next_step in CUSTOMER_WORDS.values():
        assert what.endswith(".") and next_step.endswith(".")
        assert 10 < len(what) < 100 and 10 < len(next_step) < 120


def read_sample(name: str) -> list[tuple]:
    """What a carrier integrator checks on each scan: tracking number, carrier code, status with
    the raw AT701/AT702 kept, the instant, its local UTC offset, the place and the reason."""
    from models.carriers import parse_carrier_payload

    scans = parse_carrier_payload("x12-214", (PAYLOADS / name).read_bytes(), T0)
    assert len({s.event_id for s in scans}) == len(scans), "each AT7 is a scan of its own"
    return [(s.tracking_number, s.carrier, s.status, s.raw_code, s.occurred_at, s.occurred_at.isoformat()[-6:],
             s.location, s.action_reason) for s in scans]


def test_an_ltl_carriers_summer_214_with_an_interline_hand_off():
    # Modelled on YRC Freight's published "ANSI ASC X12 Shipment Status (214) Version 004010"
    # implementation guide: B10 PRO / bill of lading / SCAC (RDWY), L11 BM and PO, N1 shipper
    # and consignee, one LX loop per status with AT7, MS1, MS2 (trailer) and AT8 (weight).
    # Summer 2026: CDT is -05:00, EDT -04:00; Arizona keeps MST (-07:00) all year.
    # AT701 J1 ("delivered to connecting line", the hand-off to an interline partner) is a
    # standard code trackline does not map: status unknown, the raw code kept for ops to map.
    # RDWY is in no published alias list trackline trusts (models/carrier_codes.py): it keeps
    # its folded spelling, so its scans match each other and an announcement naming "RDWY".
    assert read_sample("x12_214_ltl_summer_interline.edi") == [
        ("6671234501", "rdwy", S.picked_up, "AF/NS", utc(2026, 7, 14, 13, 30), "-05:00", "OVERLAND PARK, KS, US",
         None),
        ("6671234501", "rdwy", S.in_transit, "X4/NS", utc(2026, 7, 15, 6, 15), "-04:00", "COLUMBUS, OH, US", None),
        ("6671234501", "rdwy", S.unknown, "J1/NS", utc(2026, 7, 15, 15, 40), "-04:00", "INDIANAPOLIS, IN, US", None),
        ("6671234502", "rdwy", S.out_for_delivery, "X6/NS", utc(2026, 7, 16, 13, 45), "-07:00", "PHOENIX, AZ, US",
         None),
        ("6671234502", "rdwy", S.delivered, "D1/NS", utc(2026, 7, 16, 21, 12), "-07:00", "PHOENIX, AZ, US", None),
    ]


def test_a_parcel_carriers_summer_214_across_utc_midnight():
    # Modelled on FedEx's published X12 214 "Shipment Status Update" (004010) guide: B10
    # tracking number / shipper reference / SCAC (FDEG, FedEx Ground), L11, MAN package marks,
    # K1 remarks, an N1/N3/N4 ship-from loop, then LX / AT7 / MS1 per status.
    # PDT is -07:00: 18:05 on 1 June in Ontario, CA is 01:05 UTC on 2 June. AT707 LT is the
    # clock of the MS1 place (Sparks, NV: Pacific), flagged as read from the location.
    assert read_sample("x12_214_parcel_summer.edi") == [
        ("794612345018", "fedex", S.picked_up, "AF/NS", utc(2026, 6, 2, 1, 5), "-07:00", "ONTARIO, CA, US", None),
        ("794612345018", "fedex", S.out_for_delivery, "X6/NS", utc(2026, 6, 3, 14, 12), "-07:00", "RENO, NV, US",
         None),
        ("794612345018", "fedex", S.delivered, "D1/NS", utc(2026, 6, 3, 22, 30), "-07:00", "RENO, NV, US", None),
        ("794612345029", "fedex", S.attempt_failed, "AH/AQ", utc(2026, 6, 3, 23, 55), "-07:00", "SPARKS, NV, US",
         R.recipient_unavailable),
    ]
    (*_, last) = parse((PAYLOADS / "x12_214_parcel_summer.edi").read_bytes(), T0)
    assert last.flags == [F.time_zone_from_location]


@pytest.mark.parametrize("code", ["J1", "AG", "ZZ", "X9"])
def test_an_unknown_at701_is_status_unknown_with_its_raw_code_kept(code):
    scan = one_scan(f"AT7*{code}*NS***20260715*0900*CT", "MS1*MEMPHIS*TN*US")
    assert (scan.status, scan.raw_code, scan.action_reason) == (S.unknown, f"{code}/NS", None)
    assert scan.occurred_at == utc(2026, 7, 15, 14) and scan.occurred_at.isoformat().endswith("-05:00")
    assert one_scan(f"AT7*{code}****20260715*0900*CT").raw_code == code
