"""Small helpers for reading untrusted JSON with errors that say where the problem is."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import orjson

from models.errors import InvalidPayload


def load_object(raw: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload("malformed_json", str(exc)) from None
    if not isinstance(document, dict):
        raise InvalidPayload("malformed_json", f"expected a JSON object, got {type(document).__name__}")
    return document


def required(obj: dict[str, Any], field: str, where: str) -> Any:
    value = obj.get(field)
    if value is None or value == "":
        raise InvalidPayload("missing_field", f"{where}.{field} is required")
    return value


def required_object(obj: dict[str, Any], field: str, where: str) -> dict[str, Any]:
    value = required(obj, field, where)
    if not isinstance(value, dict):
        raise InvalidPayload("invalid_field", f"{where}.{field} must be an object")
    return value


def parse_time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidPayload("invalid_field", f"{where} must be an ISO 8601 time string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidPayload("invalid_field", f"{where}={value!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_date(value: Any, where: str) -> date | None:
    if value in (None, ""):
        return None
    return parse_time(value, where).date() if "T" in str(value) else _plain_date(value, where)


def _plain_date(value: Any, where: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InvalidPayload("invalid_field", f"{where}={value!r} is not a date") from None


def objects(value: Any, where: str) -> list[dict[str, Any]]:
    """A list of JSON objects (history entries, checkpoints, events); None is empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidPayload("invalid_field", f"{where} must be a list")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidPayload("invalid_field", f"{where}[{index}] must be an object")
    return value


def place(location: Any, keys: tuple[str, ...]) -> str:
    """'City, ST, US' from the parts a location object has."""
    if not isinstance(location, dict):
        return ""
    return ", ".join(str(location[k]) for k in keys if location.get(k))
