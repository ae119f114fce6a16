"""Reading untrusted JSON: every helper checks the type it returns and raises only ``InvalidPayload``.

A webhook is well-formed JSON far more often than it is the JSON the format documents: a
string where an object belongs, a list where a string belongs. Adapters read every field
through these helpers, so a wrong type is an ``invalid_field`` that names where it was,
never a ``TypeError`` that crashes the worker.

Times: ``parse_time`` keeps a time without an offset naive, so ``scan_time`` can place it in
the zone of the scan's location (``models.carriers.local_time``) and say what it assumed.
Times outside 1970-2200 are ``invalid_field``.

``failed_attempt_reason`` reads why a delivery attempt failed from a carrier's words, for the
formats whose codes only say that it failed (AfterShip AttemptFail_001, Shippo delivery_attempted).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson

from models.carriers.local_time import localize, zone_for_location
from models.errors import InvalidPayload
from models.events import ExceptionReason, ScanFlag, normalize_carrier

# Times outside these years are garbage, not scans; they would also overflow time arithmetic
# downstream (year 1 minus an offset) and the history store's DateTime64 range.
EARLIEST_YEAR = 1970
LATEST_YEAR = 2200
_EPOCH_MAX = datetime(LATEST_YEAR, 1, 1, tzinfo=UTC).timestamp()


Payload = bytes | dict[str, Any]  # the bytes as sent, or the object orjson already read from them


def load_object(raw: Payload) -> dict[str, Any]:
    if isinstance(raw, dict):  # decoded once already (models.carriers.history): not read twice
        return raw
    # orjson rejects non-UTF-8, NaN/Infinity, numbers that overflow a double and nesting deeper
    # than 1024 with JSONDecodeError; a later duplicate key wins, as in most JSON readers.
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload("malformed_json", str(exc)) from None
    if not isinstance(document, dict):
        raise InvalidPayload("malformed_json", f"expected a JSON object, got {type(document).__name__}")
    return document


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def required(obj: dict[str, Any], field: str, where: str) -> Any:
    """Present and not empty; any type (callers check it)."""
    value = obj.get(field)
    if _missing(value):
        raise InvalidPayload("missing_field", f"{where}.{field} is required")
    return value


def required_str(obj: dict[str, Any], field: str, where: str) -> str:
    value = required(obj, field, where)
    if not isinstance(value, str):
        raise InvalidPayload("invalid_field", f"{where}.{field} must be a string, got {_kind(value)}")
    return value


def optional_str(obj: dict[str, Any], field: str, where: str) -> str:
    """A string, or "" when absent or null."""
    value = obj.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidPayload("invalid_field", f"{where}.{field} must be a string, got {_kind(value)}")
    return value


def required_code(obj: dict[str, Any], field: str, where: str) -> str:
    """An identifier a producer may send as a string or an integer (tracking numbers)."""
    value = required(obj, field, where)
    # bool is an int in Python; a float is an integer that lost digits (orjson reads ints past 64 bits so).
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise InvalidPayload("invalid_field", f"{where}.{field} must be a string or an integer, got {_kind(value)}")
    return value.strip()


def optional_code(obj: dict[str, Any], field: str, where: str) -> str:
    """Like ``required_code``, but "" when absent or null (pickup codes, carrier codes)."""
    return "" if _missing(obj.get(field)) else required_code(obj, field, where)


def required_carrier(obj: dict[str, Any], field: str, where: str) -> str:
    carrier = normalize_carrier(required_str(obj, field, where))
    if not carrier:
        raise InvalidPayload("missing_field", f"{where}.{field} names no carrier")
    return carrier


def optional_bool(obj: dict[str, Any], field: str, where: str) -> bool:
    value = obj.get(field)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidPayload("invalid_field", f"{where}.{field} must be true or false, got {_kind(value)}")
    return value


def required_object(obj: dict[str, Any], field: str, where: str) -> dict[str, Any]:
    value = required(obj, field, where)
    if not isinstance(value, dict):
        raise InvalidPayload("invalid_field", f"{where}.{field} must be an object, got {_kind(value)}")
    return value


def optional_object(obj: dict[str, Any], field: str, where: str) -> dict[str, Any]:
    """An object, or {} when absent or null."""
    value = obj.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidPayload("invalid_field", f"{where}.{field} must be an object, got {_kind(value)}")
    return value


def objects(value: Any, where: str) -> list[dict[str, Any]]:
    """A list of JSON objects (history entries, checkpoints, events); None is empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidPayload("invalid_field", f"{where} must be a list, got {_kind(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidPayload("invalid_field", f"{where}[{index}] must be an object, got {_kind(item)}")
    return value


def parse_time(value: Any, where: str) -> datetime:
    """An ISO 8601 time; naive when the text has no offset (``scan_time`` decides its zone)."""
    if not isinstance(value, str):
        raise InvalidPayload("invalid_field", f"{where} must be an ISO 8601 time string, got {_kind(value)}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidPayload("invalid_field", f"{where}={value[:64]!r} is not an ISO 8601 time") from None
    offset = parsed.utcoffset() if parsed.tzinfo is not None and parsed.tzinfo is not UTC else None
    if offset and (offset.seconds % 60 or offset.microseconds):
        # An offset with seconds ("+05:30:45"): JSON writers keep whole minutes, and each rounds
        # its own way, so the order would get another instant. Kept as the same instant in UTC.
        parsed = _in_range(parsed, where).astimezone(UTC)
    return _in_range(parsed, where)


def _in_range(parsed: datetime, where: str) -> datetime:
    if not EARLIEST_YEAR <= parsed.year < LATEST_YEAR:
        raise InvalidPayload("invalid_field", f"{where}={parsed.isoformat()} is outside "
                                              f"{EARLIEST_YEAR}-{LATEST_YEAR}")
    return parsed


def epoch_time(value: Any, where: str) -> datetime:
    """Seconds since 1970 as a JSON integer (AfterShip sends some times so), in UTC."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPayload("invalid_field", f"{where} must be an integer epoch time, got {_kind(value)}")
    if not 0 < value < _EPOCH_MAX:
        raise InvalidPayload("invalid_field", f"{where}={value} is not a plausible epoch time in seconds")
    return datetime.fromtimestamp(value, UTC)


def scan_time(value: Any, where: str, country: str = "", state: str = "") -> tuple[datetime, list[ScanFlag]]:
    """When a scan happened, and what had to be assumed to know it.

    A time with an offset is kept as sent. A time without one is the carrier's local wall
    clock: it takes the zone of the scan's place when country/state name one (flagged
    ``time_zone_from_location``), else it is read as UTC (flagged ``time_zone_assumed_utc``).
    """
    parsed = parse_time(value, where)
    if parsed.tzinfo is not None:
        return parsed, []
    zone_name = zone_for_location(country, state)
    instant, flags = localize(parsed, zone_name)  # no overflow: parse_time bounded the year
    if zone_name is not None and ScanFlag.time_zone_assumed_utc not in flags:
        flags = [ScanFlag.time_zone_from_location, *flags]
    return instant, flags


def parse_date(value: Any, where: str) -> date | None:
    """A date ("2024-01-25"), or the date of a time ("2024-01-25T00:00:00Z"); None when absent."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidPayload("invalid_field", f"{where} must be a date string, got {_kind(value)}")
    if "T" in value or " " in value.strip():
        return parse_time(value, where).date()
    try:
        parsed = date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidPayload("invalid_field", f"{where}={value[:64]!r} is not a date") from None
    if not EARLIEST_YEAR <= parsed.year < LATEST_YEAR:
        raise InvalidPayload("invalid_field", f"{where}={parsed} is outside {EARLIEST_YEAR}-{LATEST_YEAR}")
    return parsed


def place_parts(location: dict[str, Any], keys: tuple[str, ...], where: str) -> list[str]:
    """The location's parts named by ``keys`` that are present; each must be a string."""
    return [part for key in keys if (part := optional_str(location, key, where).strip())]


def place(location: dict[str, Any], keys: tuple[str, ...], where: str) -> str:
    """'City, ST, US' from the parts a location object has."""
    return ", ".join(place_parts(location, keys, where))


_ATTEMPT_WORDS = (
    (("not available", "unavailable", "no one", "nobody", "not home", "not present", "absent", "no answer",
      "signature required", "signature was required"), ExceptionReason.recipient_unavailable),
    (("closed",), ExceptionReason.business_closed),
    (("address",), ExceptionReason.address_issue),
    (("refused",), ExceptionReason.refused),
    (("weather", "storm"), ExceptionReason.weather),
)


def failed_attempt_reason(text: str) -> ExceptionReason:
    """Why a delivery attempt failed, from the carrier's words; ``missed_delivery`` when they say no more.

    A failed attempt without a stated reason is still something the customer must hear about
    (re-delivery, pickup), so it is never ``None``.
    """
    lowered = text.lower()
    for words, reason in _ATTEMPT_WORDS:
        if any(word in lowered for word in words):
            return reason
    return ExceptionReason.missed_delivery
