"""Customer preferences and the notification policy that applies them.

Preferences arrive on a compacted topic keyed by customer id. Every notification command
passes ``address(command, preferences)`` before a notification worker sees it: it names
the channels, defers what falls in quiet hours (``send_after``; never dropped), and
suppresses the update types the customer opted out of (recorded in history).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import orjson
from pydantic import Field, ValidationError, field_validator

from models.delivery import without_contacts
from models.effects import Channel, HistoryRecord, NotificationCommand, NotificationType, stable_id
from models.errors import from_validation
from models.events import Contract, known_time_zone


class QuietHours(Contract):
    start: time  # local time; a window may run over midnight (22:00-07:00)
    end: time

    @field_validator("start", "end")
    @classmethod
    def _local(cls, value: time) -> time:
        # "22:00Z" parses as a time with an offset, which cannot be compared with a local time
        # later: every command of the customer would fail. The zone is the preferences' time_zone.
        if value.tzinfo is not None:
            raise ValueError("a local time without an offset (the zone is time_zone)")
        return value


class CustomerPreferences(Contract):
    customer_id: str = Field(min_length=1)
    channels: list[Channel] = Field(default_factory=lambda: [Channel.email], min_length=1)
    opted_out: list[NotificationType] = Field(default_factory=list)
    quiet_hours: QuietHours | None = None
    time_zone: str = "UTC"
    locale: str = "en-US"
    updated_at: datetime | None = None
    # Where to reach the customer: read by notification workers only. The policy stores
    # preferences without them, and they never reach history, ClickHouse, logs or the DLQ.
    email: str | None = Field(None, max_length=254, pattern=r"^[^\s@]+@[^\s@]+$")
    phone: str | None = Field(None, max_length=32, pattern=r"^\+?[0-9 ()./-]{4,31}$")

    _known_zone = field_validator("time_zone")(lambda value: known_time_zone(value))


DEFAULT = CustomerPreferences(customer_id="-")
CONTACT_FIELDS = ("email", "phone")


def without_contact(preferences: CustomerPreferences) -> CustomerPreferences:
    return preferences.model_copy(update=dict.fromkeys(CONTACT_FIELDS))


def contact_free_copy(raw: bytes) -> bytes:
    """A preferences record as the DLQ may keep it: the contact fields removed from a JSON
    object, and anything like an address or phone number masked in what does not parse."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, dict):
        return orjson.dumps({k: v for k, v in document.items() if k not in CONTACT_FIELDS})
    return without_contacts(raw.decode(errors="replace")).encode()


def parse_preferences(raw: bytes) -> CustomerPreferences:
    """A customer's preferences from JSON; every problem is ``InvalidPayload``, nothing else escapes.

    pydantic reports non-UTF-8, invalid JSON and nesting past its depth limit as ``json_invalid``
    (malformed_json) and wrong types as ValidationErrors (invalid_field / missing_field).
    """
    try:
        return CustomerPreferences.model_validate_json(raw)
    except ValidationError as exc:
        raise from_validation(exc) from None


def address(command: NotificationCommand, preferences: CustomerPreferences | None
            ) -> tuple[NotificationCommand | None, HistoryRecord]:
    """The command as it should go out (None if suppressed) and the history row saying so.

    "Now" is the time trackline saw the cause (``caused_by_ingested_at``), so a replay
    decides the same way.
    """
    prefs = preferences or DEFAULT
    now = command.caused_by_ingested_at
    if command.type in prefs.opted_out:
        return None, _outcome(command, "suppressed: opted_out", now)
    if command.stale_after is not None and now > command.stale_after:
        return None, _outcome(command, "suppressed: stale", now)
    send_after = quiet_hours_end(now, prefs)
    addressed = command.model_copy(update={
        "channels": list(prefs.channels), "locale": prefs.locale, "send_after": send_after or now})
    outcome = f"deferred until {send_after.isoformat()}" if send_after else "queued"
    return addressed, _outcome(addressed, outcome, now)


def quiet_hours_end(at: datetime, prefs: CustomerPreferences) -> datetime | None:
    """When the quiet hours that contain ``at`` end (UTC), or None if ``at`` is not in them."""
    if prefs.quiet_hours is None:
        return None
    zone = ZoneInfo(prefs.time_zone)
    local = at.astimezone(zone)
    start, end = prefs.quiet_hours.start, prefs.quiet_hours.end
    now = local.time().replace(tzinfo=None)
    if start == end:
        return None
    inside = (start <= now < end) if start < end else (now >= start or now < end)
    if not inside:
        return None
    end_day = local.date() if now < end else local.date() + timedelta(days=1)
    return datetime.combine(end_day, end, tzinfo=zone).astimezone(UTC)


def _outcome(command: NotificationCommand, outcome: str, now: datetime) -> HistoryRecord:
    return HistoryRecord(
        record_id=stable_id(command.command_id, "notification"),
        record_type="notification", order_id=command.order_id, package_id=command.package_id,
        event_id=command.command_id, source=",".join(c.value for c in command.channels),
        carrier=command.carrier, tracking_number=command.tracking_number, status=command.type.value,
        detail=outcome, occurred_at=command.occurred_at, ingested_at=now,
        attributes={"customer_id": command.customer_id, "outcome": outcome.split(" ")[0].rstrip(":"),
                    "send_after": command.send_after.isoformat() if command.send_after else "",
                    "locale": command.locale},
    )
