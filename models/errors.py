from __future__ import annotations


class InvalidPayload(ValueError):
    """A payload trackline cannot use. ``reason`` is a short code for dashboards and the DLQ."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
