"""Local times without an offset: which zone they are in, and the instant they name.

Carriers often report a scan in the local time of the place it happened, without an
offset (X12 214 AT707 ``LT`` or a local-time code, AfterShip's ``checkpoint_time``).
``zone_for_location`` derives the IANA zone from the scan's country and state where one
zone covers it; ``localize`` turns the wall-clock time into an instant in that zone,
daylight saving included, and says what it had to assume.

States and provinces split across zones take the zone of most of their people; a scan in
the other part is off by an hour (X12 local-time codes such as ``CT`` settle it, see
``models.carriers.x12_214``):

| state | split between                                         | zone chosen                    |
|-------|-------------------------------------------------------|--------------------------------|
| AK    | Alaska; Hawaii-Aleutian west of 169.5 W (Adak)        | America/Anchorage              |
| AZ    | MST all year; Navajo Nation keeps daylight saving     | America/Phoenix                |
| FL    | Eastern; Central west of the Apalachicola (panhandle) | America/New_York               |
| ID    | Mountain (Boise); Pacific north of the Salmon River   | America/Boise                  |
| IN    | Eastern; Central in the NW (Gary) and SW (Evansville) | America/Indiana/Indianapolis   |
| KS    | Central; Mountain in four western counties            | America/Chicago                |
| KY    | Eastern (Louisville, Lexington); Central in the west  | America/New_York               |
| MI    | Eastern; Central in four Upper Peninsula counties     | America/Detroit                |
| ND    | Central; Mountain in the south-west                   | America/Chicago                |
| NE    | Central; Mountain in the west (panhandle)             | America/Chicago                |
| NV    | Pacific; Mountain in West Wendover                    | America/Los_Angeles            |
| OR    | Pacific; Mountain in most of Malheur County           | America/Los_Angeles            |
| SD    | Central (Sioux Falls); Mountain in the west           | America/Chicago                |
| TN    | Central (Nashville, Memphis); Eastern in the east     | America/Chicago                |
| TX    | Central; Mountain in El Paso and Hudspeth counties    | America/Chicago                |
| BC    | Pacific; MST all year in the north-east               | America/Vancouver              |
| NL    | Newfoundland; Atlantic in most of Labrador            | America/St_Johns               |
| NU    | Eastern, Central and Mountain                         | America/Iqaluit                |
| ON    | Eastern; Central west of 90 W                         | America/Toronto                |
| SK    | CST all year; Lloydminster keeps Alberta's time       | America/Regina                 |

Countries in ``COUNTRY_ZONES`` have one zone on their mainland; the only exceptions are
small islands (Spain's Canaries, Portugal's Azores, New Zealand's Chatham Islands).
Countries with several zones (US, CA by province, MX, BR, AU, RU, ID, ...) are not in it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from models.events import ScanFlag

_NEW_YORK = "America/New_York"
_CHICAGO = "America/Chicago"
_DENVER = "America/Denver"
_LOS_ANGELES = "America/Los_Angeles"

# US states, DC and territories (USPS codes) -> the zone most of the state's people live in.
US_STATE_ZONES: dict[str, str] = {
    "AL": _CHICAGO, "AK": "America/Anchorage", "AZ": "America/Phoenix", "AR": _CHICAGO,
    "CA": _LOS_ANGELES, "CO": _DENVER, "CT": _NEW_YORK, "DE": _NEW_YORK, "DC": _NEW_YORK,
    "FL": _NEW_YORK, "GA": _NEW_YORK, "HI": "Pacific/Honolulu", "ID": "America/Boise", "IL": _CHICAGO,
    "IN": "America/Indiana/Indianapolis", "IA": _CHICAGO, "KS": _CHICAGO, "KY": _NEW_YORK,
    "LA": _CHICAGO, "ME": _NEW_YORK, "MD": _NEW_YORK, "MA": _NEW_YORK, "MI": "America/Detroit",
    "MN": _CHICAGO, "MS": _CHICAGO, "MO": _CHICAGO, "MT": _DENVER, "NE": _CHICAGO,
    "NV": _LOS_ANGELES, "NH": _NEW_YORK, "NJ": _NEW_YORK, "NM": _DENVER, "NY": _NEW_YORK,
    "NC": _NEW_YORK, "ND": _CHICAGO, "OH": _NEW_YORK, "OK": _CHICAGO, "OR": _LOS_ANGELES,
    "PA": _NEW_YORK, "RI": _NEW_YORK, "SC": _NEW_YORK, "SD": _CHICAGO, "TN": _CHICAGO,
    "TX": _CHICAGO, "UT": _DENVER, "VT": _NEW_YORK, "VA": _NEW_YORK, "WA": _LOS_ANGELES,
    "WV": _NEW_YORK, "WI": _CHICAGO, "WY": _DENVER,
    "PR": "America/Puerto_Rico", "VI": "America/St_Thomas", "GU": "Pacific/Guam",
    "AS": "Pacific/Pago_Pago", "MP": "Pacific/Saipan",
}
# Canadian provinces and territories (Canada Post codes).
CA_PROVINCE_ZONES: dict[str, str] = {
    "AB": "America/Edmonton", "BC": "America/Vancouver", "MB": "America/Winnipeg", "NB": "America/Moncton",
    "NL": "America/St_Johns", "NS": "America/Halifax", "NT": "America/Edmonton", "NU": "America/Iqaluit",
    "ON": "America/Toronto", "PE": "America/Halifax", "QC": "America/Toronto", "SK": "America/Regina",
    "YT": "America/Whitehorse",
}
# Countries (ISO 3166 alpha-2) with one zone for (nearly) every place in them.
COUNTRY_ZONES: dict[str, str] = {
    "GB": "Europe/London", "IE": "Europe/Dublin", "DE": "Europe/Berlin", "FR": "Europe/Paris",
    "NL": "Europe/Amsterdam", "BE": "Europe/Brussels", "LU": "Europe/Luxembourg", "CH": "Europe/Zurich",
    "AT": "Europe/Vienna", "IT": "Europe/Rome", "ES": "Europe/Madrid", "PT": "Europe/Lisbon",
    "DK": "Europe/Copenhagen", "NO": "Europe/Oslo", "SE": "Europe/Stockholm", "FI": "Europe/Helsinki",
    "IS": "Atlantic/Reykjavik", "PL": "Europe/Warsaw", "CZ": "Europe/Prague", "SK": "Europe/Bratislava",
    "HU": "Europe/Budapest", "SI": "Europe/Ljubljana", "HR": "Europe/Zagreb", "RO": "Europe/Bucharest",
    "BG": "Europe/Sofia", "GR": "Europe/Athens", "EE": "Europe/Tallinn", "LV": "Europe/Riga",
    "LT": "Europe/Vilnius", "TR": "Europe/Istanbul", "IL": "Asia/Jerusalem", "AE": "Asia/Dubai",
    "SA": "Asia/Riyadh", "QA": "Asia/Qatar", "IN": "Asia/Kolkata", "PK": "Asia/Karachi",
    "BD": "Asia/Dhaka", "CN": "Asia/Shanghai", "HK": "Asia/Hong_Kong", "TW": "Asia/Taipei",
    "JP": "Asia/Tokyo", "KR": "Asia/Seoul", "SG": "Asia/Singapore", "MY": "Asia/Kuala_Lumpur",
    "TH": "Asia/Bangkok", "VN": "Asia/Ho_Chi_Minh", "PH": "Asia/Manila", "NZ": "Pacific/Auckland",
    "ZA": "Africa/Johannesburg", "EG": "Africa/Cairo", "NG": "Africa/Lagos", "KE": "Africa/Nairobi",
    "MA": "Africa/Casablanca", "CO": "America/Bogota", "PE": "America/Lima",
    "AR": "America/Argentina/Buenos_Aires", "UY": "America/Montevideo", "CR": "America/Costa_Rica",
    "PA": "America/Panama", "GT": "America/Guatemala", "DO": "America/Santo_Domingo",
    "JM": "America/Jamaica",
}


def zone_for_location(country: str, state: str = "") -> str | None:
    """The IANA zone of a place, or None when it cannot be told from country and state."""
    country = (country or "").strip().upper()
    state = (state or "").strip().upper()
    # Without a country a state code is read as a US one: US carriers often leave it out.
    if country in ("US", "USA", ""):
        return US_STATE_ZONES.get(state)
    if country in ("CA", "CAN"):
        return CA_PROVINCE_ZONES.get(state)
    return COUNTRY_ZONES.get(country)


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def standard_offset(zone_name: str, day: date) -> timedelta | None:
    """The zone's offset from UTC on that day without daylight saving; None for an unknown zone."""
    tz = zone(zone_name)
    if tz is None:
        return None
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=tz)
    return (noon.utcoffset() or timedelta()) - (noon.dst() or timedelta())


def localize(wall: datetime, zone_name: str | None) -> tuple[datetime, list[ScanFlag]]:
    """The instant a naive local time names in ``zone_name``; UTC (flagged) without a zone.

    In the hour daylight saving repeats, the first occurrence is taken; a time daylight
    saving skips is moved forward by the gap. Both are flagged.
    """
    tz = zone(zone_name) if zone_name else None
    if tz is None:
        return wall.replace(tzinfo=UTC), [ScanFlag.time_zone_assumed_utc]
    first = wall.replace(tzinfo=tz, fold=0)
    second = wall.replace(tzinfo=tz, fold=1)
    flags: list[ScanFlag] = []
    if first.utcoffset() != second.utcoffset():
        # Either repeated (fold=0 is the earlier instant) or skipped (the time does not exist).
        round_trip = first.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
        if round_trip != wall:
            gap = (second.utcoffset() or timedelta()) - (first.utcoffset() or timedelta())
            moved = (wall + abs(gap)).replace(tzinfo=tz)
            return moved.astimezone(UTC), [ScanFlag.time_nonexistent]
        flags.append(ScanFlag.time_repeated_hour)
    return first.astimezone(UTC), flags
