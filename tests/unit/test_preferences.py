"""Customer preferences: channels named, quiet hours deferred (never dropped), opt-outs suppressed."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from models.effects import Channel, NotificationCommand, NotificationType
from models.errors import InvalidPayload
from models.preferences import CustomerPreferences, QuietHours, address, parse_preferences


def command(type_=NotificationType.shipped, seen_at=datetime(2026, 11, 2, 12, 0, tzinfo=UTC)):
    return NotificationCommand(command_id="c1", type=type_, order_id="ORD-1", package_id="P1",
                               customer_id="CUST-9", occurred_at=seen_at, caused_by_ingested_at=seen_at)


BERLIN_NIGHTS = CustomerPreferences(customer_id="CUST-9", channels=[Channel.sms, Channel.push],
                                    quiet_hours=QuietHours(start=time(22), end=time(7)),
                                    time_zone="Europe/Berlin", locale="de-DE",
                                    opted_out=[NotificationType.estimate_revised])


def test_without_preferences_a_command_goes_by_email_now():
    sent, row = address(command(), None)
    assert sent is not None and sent.channels == [Channel.email] and sent.send_after == sent.caused_by_ingested_at
    assert (row.record_type, row.status, row.detail) == ("notification", "shipped", "queued")


def test_commands_name_the_customers_channels_and_locale():
    sent, _ = address(command(), BERLIN_NIGHTS)  # 13:00 in Berlin: not quiet
    assert sent is not None
    assert (sent.channels, sent.locale) == ([Channel.sms, Channel.push], "de-DE")


def test_quiet_hours_defer_to_their_end_in_the_customers_time_zone():
    late_evening = datetime(2026, 11, 2, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    sent, row = address(command(seen_at=late_evening), BERLIN_NIGHTS)
    assert sent is not None  # deferred, never dropped
    assert sent.send_after == datetime(2026, 11, 3, 6, 0, tzinfo=UTC)  # 07:00 Berlin (CET)
    assert row.detail == "deferred until 2026-11-03T06:00:00+00:00"
    early_morning = datetime(2026, 11, 3, 5, 0, tzinfo=UTC)  # 06:00 in Berlin, same window
    sent, _ = address(command(seen_at=early_morning), BERLIN_NIGHTS)
    assert sent is not None and sent.send_after == datetime(2026, 11, 3, 6, 0, tzinfo=UTC)


def test_opted_out_types_are_not_sent_but_recorded_as_suppressed():
    sent, row = address(command(NotificationType.estimate_revised), BERLIN_NIGHTS)
    assert sent is None
    assert (row.status, row.detail) == ("estimate_revised", "suppressed: opted_out")
    assert address(command(NotificationType.delivered), BERLIN_NIGHTS)[0] is not None


def test_a_decision_keeps_the_commands_id_and_its_history_row_is_named_by_it():
    sent, row = address(command(), BERLIN_NIGHTS)
    assert sent.command_id == "c1"  # receivers drop repeats by it: the policy must not rename it
    other, other_row = address(command().model_copy(update={"command_id": "c2"}), BERLIN_NIGHTS)
    assert row.record_id != other_row.record_id
    # Decided again later (a replay after a crash): the same row id, so history counts it once.
    later = command().model_copy(update={"caused_by_ingested_at": datetime(2026, 11, 3, 12, 0, tzinfo=UTC)})
    assert address(later, BERLIN_NIGHTS)[1].record_id == row.record_id


@pytest.mark.parametrize(("payload", "reason"), [
    (b"{not json", "malformed_json"),
    (b'{"channels": ["email"]}', "missing_field"),
    (b'{"customer_id": "C", "channels": ["pigeon"]}', "invalid_field"),
    (b'{"customer_id": "C", "time_zone": "Mars/Olympus"}', "invalid_field"),
])
def test_bad_preferences_get_a_clear_reason(payload, reason):
    with pytest.raises(InvalidPayload) as error:
        parse_preferences(payload)
    assert error.value.reason == reason


def test_quiet_hours_inside_one_day_defer_only_inside_them():
    siesta = CustomerPreferences(customer_id="CUST-9", time_zone="Europe/Madrid",
                                 quiet_hours=QuietHours(start=time(14), end=time(16)))
    # 14:30 in Madrid (CET, UTC+1) is 13:30 UTC: deferred to 16:00 Madrid, 15:00 UTC.
    sent, _ = address(command(seen_at=datetime(2026, 11, 2, 13, 30, tzinfo=UTC)), siesta)
    assert sent.send_after == datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
    # 16:30 in Madrid: after them, sent at once.
    sent, row = address(command(seen_at=datetime(2026, 11, 2, 15, 30, tzinfo=UTC)), siesta)
    assert sent.send_after == datetime(2026, 11, 2, 15, 30, tzinfo=UTC) and row.detail == "queued"


def test_quiet_hours_across_a_daylight_saving_change_end_at_local_seven():
    # Berlin leaves summer time on 2026-10-25 at 03:00 (back to 02:00). A command seen at
    # 23:00 local on the 24th (21:00 UTC, CEST) waits until 07:00 local on the 25th, which
    # is 06:00 UTC (CET): nine hours later, not eight.
    sent, _ = address(command(seen_at=datetime(2026, 10, 24, 21, 0, tzinfo=UTC)), BERLIN_NIGHTS)
    assert sent.send_after == datetime(2026, 10, 25, 6, 0, tzinfo=UTC)
    # The spring change (2026-03-29, 02:00 -> 03:00): 07:00 CEST is 05:00 UTC.
    sent, _ = address(command(seen_at=datetime(2026, 3, 28, 22, 0, tzinfo=UTC)), BERLIN_NIGHTS)
    assert sent.send_after == datetime(2026, 3, 29, 5, 0, tzinfo=UTC)


def test_quiet_hours_with_an_offset_are_refused_where_they_arrive_not_at_every_command():
    import pytest

    from models.errors import InvalidPayload
    from models.preferences import parse_preferences

    with pytest.raises(InvalidPayload) as refused:
        parse_preferences(b'{"customer_id": "C-1", "quiet_hours": {"start": "22:00Z", "end": "07:00"}}')
    assert refused.value.reason == "invalid_field" and "quiet_hours.start" in refused.value.detail
