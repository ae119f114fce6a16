"""X12 214 (Transportation Carrier Shipment Status Message, version 4010).

An interchange (``ISA`` ... ``IEA``) holds one or more ``ST*214`` transactions, one
shipment each. The element separator is the character after ``ISA`` and the segment
terminator the character after the 16 fixed ISA elements, as the standard declares.
Per transaction: ``B10`` (01 carrier reference / PRO, used as the tracking number;
03 SCAC, the carrier), ``L11`` references (qualifier ``2I`` = tracking number, preferred
when present), and ``LX`` loops with ``AT7`` (01 status, 02 reason, 05 date CCYYMMDD,
06 time HHMM[SS[DD]], 07 time code) and ``MS1`` (city, state, country). One scan per
``AT7`` that has a status (AT701); appointment-only AT7s (AT703/AT704) are not read.

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

AT702 reason (element 1651, X12 4010 code list) -> ``action_reason``, whatever the status
(``models.exception_reasons.X12_REASONS``):

| AT702                         | meaning (X12 4010)                                   | action_reason        |
|-------------------------------|------------------------------------------------------|----------------------|
| NS, empty                     | normal status                                        | none                 |
| A3 AD AZ BJ BK CB CC          | indirect delivery, customer requested future         | none: nothing to act |
|                               | delivery, alternate carrier delivered, customer      | on, the status says  |
|                               | wanted earlier delivery, prearranged appointment,    | it all               |
|                               | no requested arrival date / time from shipper        |                      |
| A1 BH                         | missed delivery, insufficient time to complete it    | missed_delivery      |
| A2 A5 A6                      | incorrect address, unable to locate, address         | address_issue        |
|                               | corrected - delivery attempted                       |                      |
| AQ C4                         | recipient unavailable, customer vacation             | recipient_unavailable|
| AN B1 B9 C5                   | holiday - closed, consignee closed, receiving time   | business_closed      |
|                               | restricted, customer strike                          |                      |
| AO                            | weather or natural disaster related                  | weather              |
| AK                            | damaged, rewrapped in hub                            | damaged              |
| BS                            | refused by customer                                  | refused              |
| BT                            | returned to shipper                                  | returned_to_sender   |
| AP AR AS BC BD CA F1 F2       | awaiting export, improper international paperwork,   | customs              |
|                               | customs documentation hold, missing documents,       |                      |
|                               | border clearance, customs, clearance delays          |                      |
| AT                            | unable to contact recipient for broker information   | contact_carrier      |
| B2 B5 BB C1 C3 C6 C7 HB       | trap for customer, held for consignee, held per      | package_held         |
|                               | shipper, waiting for customer pick-up, suspended at  |                      |
|                               | customer request, waiting shipping instructions /    |                      |
|                               | customer's carrier, held pending appointment         |                      |
| B4 C2 C8 C9                   | held for payment, credit hold, COD required, cash    | payment_due          |
|                               | not available from consignee                         |                      |
| AA AF AH AI AJ AL AM AU AW AX | carrier-side: mis-sort, accident, driver, breakdown, | delayed              |
| AY BE BF BI BL BM BO BP BQ BR | other carrier, previous stop, shipper, civil event,  |                      |
| D1 D2 P1                      | cut-off / pick-up time, road conditions, keying      |                      |
|                               | error, cartage agent, protective service, rail,      |                      |
|                               | load shifted, overweight, dispatch, driver not       |                      |
|                               | available, processing delay                          |                      |
| AE AG AV B8 BG BN             | restricted articles, consignee related, exceeds      | other                |
|                               | service limits, unloading facility, other, billing   |                      |
| any other code                | not in the list above                                | delayed on SD, else  |
|                               |                                                      | other                |

AT707 time code (element 623) -> the instant of AT705/AT706:

| AT707                         | read as                                                          |
|-------------------------------|------------------------------------------------------------------|
| ET CT MT PT AT HT NT TT       | local time with daylight saving (zoneinfo, on the event's date)  |
|                               | in the code's zone for the MS1 place (table below)               |
| ES ED CS CD MS MD PS PD       | fixed: -5 -4 -6 -5 -7 -6 -8 -7                                   |
| AS AD HS HD NS ND TS TD       | fixed: -9 -8 -10 -9 -3:30 -2:30 -4 -3                            |
| UT GM                         | UTC                                                              |
| 01..12 / 13..24               | fixed ISO offsets +1..+12 / -12..-1                              |
| LT, empty, any other code     | the MS1 place's zone (``local_time.zone_for_location``), flagged |
|                               | ``time_zone_from_location``; none derivable: UTC, flagged        |
|                               | ``time_zone_assumed_utc``                                        |

A local-time code takes its default zone (ET America/New_York, CT America/Chicago,
MT America/Denver, PT America/Los_Angeles, AT America/Anchorage, HT Pacific/Honolulu,
NT America/St_Johns, TT America/Halifax), unless the MS1 place's own zone has the code's
standard offset on that date: then that zone, so its own daylight-saving rules apply. For
states split across zones this gives:

| code + MS1 state    | zone                                         | note                            |
|---------------------|----------------------------------------------|---------------------------------|
| MT + AZ             | America/Phoenix                              | no daylight saving              |
| ET / CT + IN        | America/Indiana/Indianapolis / America/Chicago | NW and SW Indiana are Central |
| MT / PT + ID        | America/Boise / America/Los_Angeles          | north Idaho is Pacific          |
| ET / CT + KY, TN, FL| America/New_York / America/Chicago           |                                 |
| MT + TX, NE, KS, ND, SD, NV | America/Denver                       | their Mountain corners          |
| ET / CT + MI        | America/Detroit / America/Menominee          | override: four UP counties      |
| MT + OR             | America/Boise                                | override: Malheur County        |
| AT / HT + AK        | America/Anchorage / America/Adak             | override: the Aleutians         |
| NT / TT + NL        | America/St_Johns / America/Goose_Bay         | override: Labrador              |
| CT + SK             | America/Regina                               | no daylight saving              |
| TT + PR, VI         | America/Puerto_Rico, America/St_Thomas       | no daylight saving              |

In the hour daylight saving repeats the first occurrence is taken (``time_repeated_hour``);
a time daylight saving skips is moved forward by the gap (``time_nonexistent``). Times
keep the offset they had where they happened; dates outside 1970-2199 are impossible.

Errors: ``parse_parts`` raises ``InvalidPayload`` (malformed_x12) only for the interchange:
no ISA, a broken ISA, no IEA (truncated). A transaction with a problem (not a 214, SE count
or control number wrong, no B10, no AT7, an impossible date, ...) becomes one rejection with
its own bytes (ST ... SE) while the other shipments' scans are returned. ``parse`` returns
the scans, or raises the first rejection when there are none. Whatever the bytes, nothing
but ``InvalidPayload`` escapes either.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from itertools import islice
from typing import NamedTuple

from models.carriers.local_time import localize, standard_offset, zone, zone_for_location
from models.effects import stable_id
from models.errors import InvalidPayload
from models.events import CarrierScan, PackageStatus, ScanFlag, normalize_carrier
from models.exception_reasons import x12_reason

SOURCE = "x12-214"
S = PackageStatus
STATUS_MAP = {
    "X3": S.info_received, "AF": S.picked_up, "X4": S.in_transit, "P1": S.in_transit, "K1": S.in_transit,
    "X6": S.out_for_delivery, "X1": S.out_for_delivery, "D1": S.delivered, "AH": S.attempt_failed,
    "AP": S.attempt_failed, "SD": S.exception, "A7": S.exception, "A9": S.exception,
    "A3": S.returned_to_sender, "CA": S.cancelled,
}
# AT707 codes that follow daylight saving -> their zone when the MS1 place does not refine it.
LOCAL_TIME_ZONES = {
    "ET": "America/New_York", "CT": "America/Chicago", "MT": "America/Denver", "PT": "America/Los_Angeles",
    "AT": "America/Anchorage", "HT": "Pacific/Honolulu", "NT": "America/St_Johns", "TT": "America/Halifax",
}
# (code, MS1 state) whose zone is neither the code's default nor the state's main zone.
LOCAL_TIME_OVERRIDES = {
    ("HT", "AK"): "America/Adak", ("CT", "MI"): "America/Menominee", ("MT", "OR"): "America/Boise",
    ("TT", "NL"): "America/Goose_Bay",
}
_H = timedelta(hours=1)
# AT707 codes with a fixed offset from UTC, whatever the date.
FIXED_OFFSETS: dict[str, timedelta] = {
    "UT": timedelta(0), "GM": timedelta(0),
    "ES": -5 * _H, "ED": -4 * _H, "CS": -6 * _H, "CD": -5 * _H, "MS": -7 * _H, "MD": -6 * _H,
    "PS": -8 * _H, "PD": -7 * _H, "AS": -9 * _H, "AD": -8 * _H, "HS": -10 * _H, "HD": -9 * _H,
    "NS": -3.5 * _H, "ND": -2.5 * _H, "TS": -4 * _H, "TD": -3 * _H,
    # ISO 8601 offsets: 01..12 are P01..P12, 13..24 are M12..M01.
    **{f"{n:02d}": n * _H for n in range(1, 13)}, **{f"{n:02d}": (n - 25) * _H for n in range(13, 25)},
}
EARLIEST_YEAR, LATEST_YEAR = 1970, 2200  # as models.carriers.json_fields: no scan is older or later


class _Segment(NamedTuple):
    start: int  # offset of the segment's tag in the raw bytes
    end: int  # offset just past its terminator
    elements: list[str]

    @property
    def tag(self) -> str:
        return self.elements[0]


def parse(raw: bytes, ingested_at: datetime) -> list[CarrierScan]:
    scans, rejected = parse_parts(raw, ingested_at)
    if scans:
        return scans
    if rejected:
        raise rejected[0][0]
    raise InvalidPayload("missing_field", "no ST*214 transaction with an AT7 shipment status in the interchange")


def parse_parts(raw: bytes, ingested_at: datetime) -> tuple[list[CarrierScan], list[tuple[InvalidPayload, bytes]]]:
    """Every shipment's scans, and each transaction that could not be read with its own bytes."""
    # latin-1 maps each byte to one character, so text offsets are byte offsets.
    text = bytes(raw).decode("latin-1")
    scans: list[CarrierScan] = []
    rejected: list[tuple[InvalidPayload, bytes]] = []
    pos = _skip_blank(text, 0)
    if pos == len(text):
        raise InvalidPayload("malformed_x12", "the payload is empty")
    while pos < len(text):  # senders may concatenate interchanges
        pos = _skip_blank(text, _interchange(text, pos, raw, ingested_at, scans, rejected))
    return scans, rejected


def _skip_blank(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _interchange(text: str, start: int, raw: bytes, ingested_at: datetime, scans: list[CarrierScan],
                 rejected: list[tuple[InvalidPayload, bytes]]) -> int:
    """Reads one ISA ... IEA into scans and rejections; the offset just past its IEA."""
    if not text.startswith("ISA", start) or len(text) - start < 106:
        raise InvalidPayload("malformed_x12", "an X12 interchange starts with a 106-character ISA segment")
    element, terminator = text[start + 3], text[start + 105]
    if (len(text[start:start + 105].split(element)) != 17 or element.isalnum() or element.isspace()
            or terminator.isalnum() or terminator == element):
        raise InvalidPayload("malformed_x12", "the ISA segment does not declare its separators in the fixed "
                                              "106 characters (16 elements, terminator at 106)")
    transaction: list[_Segment] | None = None
    pos = start + 106
    while (segment := _next_segment(text, pos, element, terminator)) is not None:
        pos = segment.end
        if segment.tag in ("ST", "GS", "GE", "IEA") and transaction is not None:
            # The open transaction never reached its SE: it alone is lost.
            rejected.append((InvalidPayload("malformed_x12", "ST without SE: the transaction is cut short"),
                             raw[transaction[0].start:segment.start]))
            transaction = None
        if segment.tag == "IEA":
            return pos
        if segment.tag == "ST":
            transaction = [segment]
        elif segment.tag == "SE":
            if transaction is None:
                rejected.append((InvalidPayload("malformed_x12", "SE without ST"), raw[segment.start:segment.end]))
                continue
            transaction.append(segment)
            try:
                scans.extend(_transaction(transaction, ingested_at))
            except InvalidPayload as error:
                rejected.append((error, raw[transaction[0].start:segment.end]))
            transaction = None
        elif transaction is not None:
            transaction.append(segment)
    raise InvalidPayload("malformed_x12", "the interchange ends without IEA: it is truncated")


def _next_segment(text: str, pos: int, element: str, terminator: str) -> _Segment | None:
    while pos < len(text):
        found = text.find(terminator, pos)
        stop = len(text) if found < 0 else found
        body = text[pos:stop]
        if body.strip():
            lead = len(body) - len(body.lstrip())
            return _Segment(pos + lead, stop + 1 if found >= 0 else stop,
                            [e.strip() for e in body.strip().split(element)])
        pos = stop + 1
    return None


def _transaction(segments: list[_Segment], ingested_at: datetime) -> list[CarrierScan]:
    st, se = segments[0].elements, segments[-1].elements
    if _element(st, 1) != "214":
        raise InvalidPayload("unsupported_event", f"transaction set {_element(st, 1)[:8]!r} is not a 214")
    count = _element(se, 1)
    if not (count.isascii() and count.isdigit()) or int(count) != len(segments):
        raise InvalidPayload("malformed_x12", f"SE01 says {count[:8]!r} segments, the transaction has "
                                              f"{len(segments)}: segments were lost or added")
    if _element(se, 2) != _element(st, 2):
        raise InvalidPayload("malformed_x12", "SE02 does not repeat the ST02 control number")
    return _shipment([s.elements for s in segments[1:-1]], ingested_at)


def _element(segment: list[str], index: int) -> str:
    return segment[index] if len(segment) > index else ""


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
    statuses = [i for i, s in enumerate(segments) if s[0] == "AT7"]
    if not statuses:
        raise InvalidPayload("missing_field", "a 214 transaction needs an AT7 shipment status")
    scans = []
    for i in statuses:
        at7 = segments[i]
        status, reason = _element(at7, 1).upper(), _element(at7, 2).upper()
        if not status:
            continue  # an appointment (AT703/AT704), not a status of the shipment
        city, state, country = _place(segments, i)
        occurred_at, flags = _time(_element(at7, 5), _element(at7, 6), _element(at7, 7).upper(), country, state)
        scans.append(CarrierScan(
            event_id=stable_id(SOURCE, carrier, tracking, occurred_at.isoformat(), status, reason),
            source=SOURCE, carrier=carrier, tracking_number=tracking,
            status=STATUS_MAP.get(status, S.unknown), raw_code=f"{status}/{reason}" if reason else status,
            raw_message="", occurred_at=occurred_at, ingested_at=ingested_at,
            location=", ".join(p for p in (city, state, country) if p),
            action_reason=x12_reason(status, reason), flags=flags,
        ))
    if not scans:
        raise InvalidPayload("unsupported_event", "the transaction has appointment AT7s only (no AT701 status)")
    return scans


def _place(segments: list[list[str]], at7: int) -> tuple[str, str, str]:
    """MS1 city, state, country of the AT7 at that index: the MS1 in its own loop, if any."""
    for segment in islice(segments, at7 + 1, None):  # no copy: a transaction may hold many AT7s
        if segment[0] in ("AT7", "LX"):
            break
        if segment[0] == "MS1":
            return _element(segment, 1), _element(segment, 2).upper(), _element(segment, 3).upper()
    return "", "", ""


def _time(day: str, hhmm: str, code: str, country: str, state: str) -> tuple[datetime, list[ScanFlag]]:
    wall = _wall_clock(day, hhmm)
    if code in FIXED_OFFSETS:
        return wall.replace(tzinfo=timezone(FIXED_OFFSETS[code])), []
    if code in LOCAL_TIME_ZONES:
        zone_name: str | None = _code_zone(code, country, state, wall.date())
        flags: list[ScanFlag] = []
    else:  # LT, no code or one we do not know: the clock of the place it happened
        zone_name = zone_for_location(country, state)
        flags = [ScanFlag.time_zone_from_location] if zone_name else []
    instant, assumed = localize(wall, zone_name)
    return _with_local_offset(instant, zone_name), flags + assumed


def _code_zone(code: str, country: str, state: str, day: date) -> str:
    default = LOCAL_TIME_ZONES[code]
    if (code, state) in LOCAL_TIME_OVERRIDES:
        return LOCAL_TIME_OVERRIDES[(code, state)]
    here = zone_for_location(country, state)
    # The place's own zone when it is in the code's zone family: its daylight-saving rules apply.
    if here and standard_offset(here, day) == standard_offset(default, day):
        return here
    return default


def _with_local_offset(instant: datetime, zone_name: str | None) -> datetime:
    # The same instant at the offset it had where it happened: event ids and messages keep local time.
    tz = zone(zone_name) if zone_name else None
    if tz is None:
        return instant.astimezone(UTC)
    local = instant.astimezone(tz)
    return local.replace(tzinfo=timezone(local.utcoffset() or timedelta()))


def _wall_clock(day: str, hhmm: str) -> datetime:
    """AT705 CCYYMMDD and AT706 HHMM[SS[D[D]]] as a naive wall-clock time."""
    if not day:
        raise InvalidPayload("missing_field", "AT705 (the date of the status) is required")
    clock = hhmm or "0000"
    if not (len(day) == 8 and day.isascii() and day.isdigit()
            and len(clock) in (4, 6, 7, 8) and clock.isascii() and clock.isdigit()):
        raise InvalidPayload("invalid_field", f"AT7 date {day[:16]!r} time {hhmm[:16]!r} is not CCYYMMDD HHMM")
    try:
        wall = datetime(int(day[:4]), int(day[4:6]), int(day[6:]), int(clock[:2]), int(clock[2:4]),
                        int(clock[4:6] or 0), int(clock[6:].ljust(2, "0")) * 10_000)
    except ValueError:
        raise InvalidPayload("invalid_field", f"AT7 date {day!r} time {hhmm!r} does not exist") from None
    if not EARLIEST_YEAR <= wall.year < LATEST_YEAR:
        raise InvalidPayload("invalid_field", f"AT7 date {day!r} is outside {EARLIEST_YEAR}-{LATEST_YEAR - 1}")
    return wall
