"""Local times without an offset: which zone they are in, and the instant they name.

Carriers often report a scan in the local time of the place it happened, without an
offset (X12 214 AT707 ``LT`` or a local-time code, AfterShip's ``checkpoint_time``).
``zone_for_location`` derives the IANA zone from the scan's country and state where one
zone covers it; ``localize`` turns the wall-clock time into an instant in that zone,
daylight saving included, and says what it had to assume.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from models.events import ScanFlag

# US states (and DC, territories) -> the zone most of the state's population lives in.
# States split across zones take the zone of their largest cities; the table says which.
US_STATE_ZONES: dict[str, str] = {
    "NY": "America/New_York", "CA": "America/Los_Angeles", "IL": "America/Chicago", "TX": "America/Chicago",
    "CO": "America/Denver", "AZ": "America/Phoenix", "WA": "America/Los_Angeles",
}
# Countries with one zone for every place in them.
COUNTRY_ZONES: dict[str, str] = {
    "GB": "Europe/London", "DE": "Europe/Berlin", "FR": "Europe/Paris", "NL": "Europe/Amsterdam",
}


def zone_for_location(country: str, state: str = "") -> str | None:
    """The IANA zone of a place, or None when it cannot be told from country and state."""
    country = (country or "").strip().upper()
    state = (state or "").strip().upper()
    if country in ("US", "USA", "") and state in US_STATE_ZONES:
        return US_STATE_ZONES[state]
    return COUNTRY_ZONES.get(country)


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


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
