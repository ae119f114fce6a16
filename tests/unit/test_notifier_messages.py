"""What customers read and how delivery decides, without a server: every update type in both
languages, hostile carrier text escaped, back-off and the failure classes, contact data masked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.delivery import RetryPolicy, State, after_failure, http_permanent, smtp_permanent, without_contacts
from models.effects import NotificationCommand, NotificationType
from models.preferences import contact_free_copy
from notifier.messages import render

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def command(type_: NotificationType, locale: str, **extra: object) -> dict:
    fields: dict = dict(
        command_id="c1", type=type_, order_id="ORD-7", package_id="P1", customer_id="C", occurred_at=NOW,
        caused_by_ingested_at=NOW, locale=locale, carrier="UPS", tracking_number="1Z1",
        estimated_delivery=NOW.date() + timedelta(days=2), reason="weather", next_step="Nothing to do.",
        location="Locker 3", pickup_code="99", pickup_deadline=NOW + timedelta(days=5), refund_amount="9.90",
        refund_currency="EUR")
    return orjson.loads(NotificationCommand(**{**fields, **extra}).model_dump_json())


@pytest.mark.parametrize("locale", ["en-US", "de-DE"])
def test_every_update_type_has_its_own_subject_and_a_body(locale: str) -> None:
    subjects = set()
    for type_ in NotificationType:
        message = render(command(type_, locale), "Europe/Berlin")
        assert "ORD-7" in message.subject, type_
        assert message.text.strip() and "{" not in message.text and "None" not in message.text, (type_, message.text)
        assert message.subject in message.html
        subjects.add(message.subject)
    assert len(subjects) == len(NotificationType)


def test_a_locale_without_templates_reads_english() -> None:
    assert render(command(NotificationType.shipped, "ja-JP")).language == "en"
    assert render(command(NotificationType.shipped, "de-AT")).language == "de"


def test_what_a_carrier_wrote_is_escaped_in_the_html() -> None:
    hostile = command(NotificationType.delivered, "en-US", location='<script>alert(1)</script> "porch"')
    message = render(hostile)
    assert "<script>" not in message.html and "&lt;script&gt;" in message.html
    assert '<script>alert(1)</script> "porch"' in message.text  # plain text is shown as text


def test_links_appear_in_both_bodies() -> None:
    message = render(command(NotificationType.shipped, "en-US", tracking_url="https://www.ups.com/track?tracknum=1Z1",
                             tracking_page_url="https://track.example/track/t"))
    assert "Follow your order: https://track.example/track/t" in message.text
    assert '<a href="https://www.ups.com/track?tracknum=1Z1">' in message.html


def test_back_off_doubles_up_to_the_cap_within_its_jitter() -> None:
    policy = RetryPolicy(max_attempts=10, base_seconds=1, cap_seconds=8)
    windows = [policy.delay(n, 0.999).total_seconds() for n in range(1, 7)]
    assert windows == pytest.approx([1, 2, 4, 8, 8, 8], rel=0.01)
    assert policy.delay(3, 0.0).total_seconds() == 2  # the lower half of the window is never used


def test_failures_retry_until_the_limit_and_permanent_ones_stop_at_once() -> None:
    policy = RetryPolicy(max_attempts=3, base_seconds=1, cap_seconds=60)
    assert after_failure(0, False, policy, NOW, 0.5)[0] is State.retry
    assert after_failure(1, False, policy, NOW, 0.5)[0] is State.retry
    assert after_failure(2, False, policy, NOW, 0.5) == (State.failed, None)
    assert after_failure(0, True, policy, NOW, 0.5) == (State.failed, None)
    assert [smtp_permanent(c) for c in (421, 451, 550, 554)] == [False, False, True, True]
    assert [http_permanent(c) for c in (400, 404, 408, 429, 500, 503)] == [True, True, False, False, False, False]


def test_contact_data_is_masked_in_text_and_removed_from_dead_letter_copies() -> None:
    assert without_contacts("550 5.1.1 <erika@example.de>: no such user, call +49 151 2345 6789") == \
        "550 5.1.1 <<address>>: no such user, call <phone>"
    assert without_contacts("at 2026-11-27T10:00:00Z order ORD-123456789") == \
        "at 2026-11-27T10:00:00Z order ORD-123456789"  # dates and ids stay
    copy = orjson.loads(contact_free_copy(orjson.dumps(
        {"customer_id": "C", "email": "a@b.de", "phone": "+1 555 123 4567", "time_zone": "Mars/Base"})))
    assert copy == {"customer_id": "C", "time_zone": "Mars/Base"}
    assert b"a@b.de" not in contact_free_copy(b'{"customer_id": "C", "email": "a@b.de", ')


@given(st.emails())
def test_any_address_is_masked(address: str) -> None:
    assert address not in without_contacts(f"refused {address} today")


@pytest.mark.parametrize("field, value", [("order_id", 7), ("package_id", 5), ("type", ["shipped"]),
                                          ("caused_by_ingested_at", 1_700_000_000)])
def test_a_command_whose_delivery_row_would_be_mistyped_is_a_dead_letter(field: str, value: object) -> None:
    """The delivery row is checked before the command is sent: a field of the wrong type is a dead
    letter with its reason, not a row ClickHouse refuses after the customer was told."""
    from models.errors import InvalidPayload
    from notifier.worker import decode_command

    good = command(NotificationType.shipped, "en")
    assert decode_command(orjson.dumps(good))["command_id"] == "c1"
    with pytest.raises(InvalidPayload, match="invalid_internal_event"):
        decode_command(orjson.dumps({**good, field: value}))
