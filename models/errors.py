from __future__ import annotations

from pydantic import ValidationError


class InvalidPayload(ValueError):
    """A payload trackline cannot use. ``reason`` is a short code for dashboards and the DLQ."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def from_validation(exc: ValidationError) -> InvalidPayload:
    """The first thing pydantic found wrong, as a DLQ reason and where it was."""
    first = exc.errors()[0]
    reason = "malformed_json" if first["type"] == "json_invalid" else (
        "missing_field" if first["type"] == "missing" else "invalid_field")
    where = ".".join(str(p) for p in first["loc"])
    return InvalidPayload(reason, f"{where}: {first['msg']}" if where else first["msg"])
