"""X12 214 (Transportation Carrier Shipment Status Message, version 4010).

An interchange (``ISA`` ... ``IEA``) holds one or more ``ST*214`` transactions, one
shipment each. The element separator is the character after ``ISA`` and the segment
terminator the character after the 16 fixed ISA elements, as the standard declares.
Per transaction: ``B10`` (01 carrier reference / PRO, used as the tracking number;
03 SCAC, the carrier), ``L11`` references (qualifier ``2I`` = tracking number, preferred
when present), and ``LX`` loops with ``AT7`` (01 status, 02 reason, 05 date CCYYMMDD,
06 time HHMM, 07 time zone) and ``MS1`` (city, state, country). One scan per ``AT7``.

AT701 status mapping (X12 -> trackline); ``raw_code`` keeps ``AT701/AT702``:

| AT701 | meaning                                   | trackline             |
|-------|-------------------------------------------|-----------------------|
| X3    | arrived at pick-up location               | info_received         |
| AF    | departed pick-up location with shipment   | picked_up             |
| X4,P1 | arrived at / departed terminal            | in_transit            |
| K1    | arrived at customs                        | in_transit            |
| X6,X1 | en route to / arrived at delivery location| out_for_delivery      |
| D1    | completed unloading at delivery location  | delivered             |
| AH,AP | attempted / not completed delivery        | attempt_failed        |
| SD,A7,A9 | delayed, refused, damaged              | exception             |
| A3    | returned to shipper                       | returned_to_sender    |
| CA    | cancelled                                 | cancelled             |
| AG, other | estimate or unmapped                  | unknown (raw kept)    |
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from models.effects import stable_id
from models.errors import InvalidPayload
from models.events import CarrierScan, PackageStatus, normalize_carrier

SOURCE = "x12-214"
S = PackageStatus
STATUS_MAP = {
    "X3": S.info_received, "AF": S.picked_up, "X4": S.in_transit, "P1": S.in_transit, "K1": S.in_transit,
    "X6": S.out_for_delivery, "X1": S.out_for_delivery, "D1": S.delivered, "AH": S.attempt_failed,
    "AP": S.attempt_failed, "SD": S.exception, "A7": S.exception, "A9": S.exception,
    "A3": S.returned_to_sender, "CA": S.cancelled,
}
# AT707 time codes; LT (local time) carries no offset and is read as UTC.
TIME_ZONES = {"UT": 0, "GM": 0, "LT": 0, "ET": -5, "ED": -4, "CT": -6, "CD": -5, "MT": -7, "MD": -6,
              "PT": -8, "PD": -7}


def parse(raw: bytes, ingested_at: datetime) -> list[CarrierScan]:
    text = raw.decode("ascii", errors="replace").lstrip()
    if not text.startswith("ISA") or len(text) < 106:
        raise InvalidPayload("malformed_x12", "an X12 interchange starts with a 106-character ISA segment")
    element = text[3]
    terminator = text[105]
    segments = [s.strip().split(element) for s in text.split(terminator) if s.strip()]
    scans: list[CarrierScan] = []
    transaction: list[list[str]] | None = None
    for segment in segments:
        tag = segment[0]
        if tag == "ST":
            if len(segment) < 2 or segment[1] != "214":
                raise InvalidPayload("unsupported_event", f"transaction set {segment[1:2]} is not a 214")
            transaction = []
        elif tag == "SE":
            if transaction is None:
                raise InvalidPayload("malformed_x12", "SE without ST")
            scans.extend(_shipment(transaction, ingested_at))
            transaction = None
        elif transaction is not None:
            transaction.append(segment)
    if transaction is not None:
        raise InvalidPayload("malformed_x12", "ST without SE: the interchange is truncated")
    if not scans:
        raise InvalidPayload("missing_field", "no AT7 shipment status in the interchange")
    return scans


def _element(segment: list[str], index: int) -> str:
    return segment[index].strip() if len(segment) > index else ""


def _shipment(segments: list[list[str]], ingested_at: datetime) -> list[CarrierScan]:
    b10 = next((s for s in segments if s[0] == "B10"), None)
    if b10 is None:
        raise InvalidPayload("missing_field", "a 214 transaction needs a B10 segment")
    tracking = next((_element(s, 1) for s in segments if s[0] == "L11" and _element(s, 2) == "2I"), "")
    tracking = tracking or _element(b10, 1)
    carrier = normalize_carrier(_element(b10, 3) or next(
        (_element(s, 1) for s in segments if s[0] == "MS2"), ""))
    if not tracking or not carrier:
        raise InvalidPayload("missing_field", "B10 needs a carrier reference (01) and a SCAC (03)")
    scans = []
    for i, segment in enumerate(segments):
        if segment[0] != "AT7":
            continue
        status, reason = _element(segment, 1), _element(segment, 2)
        occurred_at = _time(_element(segment, 5), _element(segment, 6), _element(segment, 7))
        following = segments[i + 1] if i + 1 < len(segments) else []
        location = ", ".join(p for p in (_element(following, 1), _element(following, 2), _element(following, 3))
                             if p) if following and following[0] == "MS1" else ""
        scans.append(CarrierScan(
            event_id=stable_id(SOURCE, carrier, tracking, occurred_at.isoformat(), status, reason),
            source=SOURCE, carrier=carrier, tracking_number=tracking,
            status=STATUS_MAP.get(status, S.unknown), raw_code=f"{status}/{reason}" if reason else status,
            raw_message="", occurred_at=occurred_at, ingested_at=ingested_at, location=location,
        ))
    return scans


def _time(day: str, hhmm: str, zone: str) -> datetime:
    try:
        moment = datetime.strptime(day + (hhmm or "0000")[:4], "%Y%m%d%H%M")
    except ValueError:
        raise InvalidPayload("invalid_field", f"AT7 date {day!r} time {hhmm!r} is not CCYYMMDD HHMM") from None
    return moment.replace(tzinfo=timezone(timedelta(hours=TIME_ZONES.get(zone, 0))))
