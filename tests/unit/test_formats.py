"""Rolling upgrades: today's stored state and internal records, committed as fixtures, still read.

The fixtures in ``tests/fixtures/formats`` were written once from a simulated journey through
the pure core: ``*.format2`` and the ``.json`` files in today's formats, ``order_state.format1``
as states were stored before they carried a version, and ``*.newer*`` as a newer worker might
write them (format 3, a new order and package status, a new update type, a field this version
lacks). Never regenerate them to make this test pass: a change that breaks them breaks every
running deployment's stored state.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from models.codec import decode_history, encode
from models.effects import NotificationCommand
from models.events import PackageStatus, order_events_batch_adapter
from models.formats import is_known, keeping_unknown_values
from models.order import apply
from models.state import OrderStatus
from streams import order_store
from streams.notification_policy import _intent
from streams.router import decode_entry, encode_entry

FIXTURES = Path(__file__).parent.parent / "fixtures" / "formats"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_todays_stored_state_reads_with_its_journey() -> None:
    state = order_store.decode(fixture("order_state.format2"))
    assert order_store.stored_format(fixture("order_state.format2")) == 2
    assert state.order_id == "ORD-0000001-79d6"
    assert state.status is OrderStatus.delivered
    (package,) = state.packages.values()
    assert package.status is PackageStatus.delivered
    assert package.tracking_number == "9654989331"
    assert [entry.status for entry in package.timeline][-1] is PackageStatus.delivered
    assert "delivered" in " ".join(state.notified)
    # Stored again as this version writes it, it reads the same.
    assert order_store.decode(order_store.encode(state)) == state


def test_state_stored_before_versions_reads_as_it_was() -> None:
    assert order_store.stored_format(fixture("order_state.format1")) == 1
    assert order_store.decode(fixture("order_state.format1")) == order_store.decode(fixture("order_state.format2"))
    assert order_store.stored_deadline(fixture("order_state.format1")) == \
        order_store.stored_deadline(fixture("order_state.format2")) != 0


def test_state_from_a_newer_worker_keeps_what_this_one_does_not_know() -> None:
    newer = fixture("order_state.newer")
    state = order_store.decode(newer)  # format 3, new statuses: read, not refused
    assert state.status == "on_hold" and not is_known(state.status)
    (package,) = state.packages.values()
    assert package.status == "held_at_customs" and not is_known(package.status)
    # Written back by this worker, the values survive for the newer one to read again.
    again = order_store.decode(order_store.encode(state))
    assert (again.status, next(iter(again.packages.values())).status) == ("on_hold", "held_at_customs")


def test_an_event_on_a_state_with_unknown_values_does_not_stop_the_order() -> None:
    state = order_store.decode(fixture("order_state.newer"))
    with keeping_unknown_values():
        events = order_events_batch_adapter.validate_json(fixture("order_events.envelope.json"))
    later = events[-1].model_copy(update={"event_id": "a-new-scan", "occurred_at": events[-1].occurred_at
                                          + timedelta(hours=1)})
    new_state, _ = apply(state, later)
    assert new_state.order_id == state.order_id


def test_todays_order_events_envelope_reads() -> None:
    events = order_events_batch_adapter.validate_json(fixture("order_events.envelope.json"))
    assert len(events) == 10
    assert {event.order_id for event in events} == {"ORD-0000001-79d6"}
    assert events[-1].status is PackageStatus.delivered


def test_an_envelope_from_a_newer_router_is_not_dead_lettered_whole() -> None:
    raw = fixture("order_events.envelope.newer.json")
    with pytest.raises(ValueError):  # at the edges an unknown status is still refused
        order_events_batch_adapter.validate_json(raw)
    with keeping_unknown_values():
        events = order_events_batch_adapter.validate_json(raw)
    assert len(events) == 10
    assert events[-2].status == "held_at_customs" and not is_known(events[-2].status)
    assert "photo_taken" in events[-2].flags


def test_todays_and_a_newer_notification_intent_read() -> None:
    today = _intent(fixture("notification_intent.json"))
    assert isinstance(today, NotificationCommand) and today.type == "delivered"
    newer = _intent(fixture("notification_intent.newer.json"))
    assert newer.type == "delivery_photo" and not is_known(newer.type)
    assert newer.command_id == today.command_id


def test_history_records_are_written_byte_for_byte_as_before() -> None:
    """The history rows were pydantic models; msgspec now writes them. The sink and ClickHouse's
    views read the same bytes: the envelope an older worker wrote reads back and writes again
    unchanged."""
    raw = fixture("history.envelope.json").strip()
    assert b"[" + b",".join(encode(row) for row in decode_history(raw)) + b"]" == raw


def test_todays_history_envelope_and_tracking_entry_read() -> None:
    rows = decode_history(fixture("history.envelope.json"))
    assert len(rows) == 6 and {row.order_id for row in rows} == {"ORD-0000001-79d6"}
    entry = decode_entry(fixture("tracking_entry.format2"))
    (link,) = entry.links.values()
    assert link.order_id == "ORD-0000001-79d6"
    assert decode_entry(encode_entry(entry, timedelta(hours=1))) == entry


@pytest.mark.parametrize("payload, source", [
    ("easypost_tracker_updated.json", "easypost"), ("aftership_tracking_update.json", "aftership"),
    ("shippo_track_updated.json", "shippo"), ("generic_carrier_events.json", "generic"),
    ("x12_214_two_shipments.edi", "x12-214"), ("x12_214_ltl_summer_interline.edi", "x12-214")])
def test_a_routed_scan_reaches_its_order_as_pydantic_wrote_it(payload: str, source: str) -> None:
    """The router writes scans for the order hop with msgspec: the same bytes pydantic wrote
    (offsets, dates, flags, empty fields), and the order tracker reads back the scan sent."""
    from datetime import UTC, datetime

    from models.carriers import parse_payload
    from models.codec import encode_scan

    received = datetime(2026, 11, 2, 8, 0, 0, 123456, tzinfo=UTC)
    scans, _ = parse_payload(source, (Path(__file__).parents[1] / "payloads" / payload).read_bytes(), received)
    assert scans
    for scan in scans:
        routed = scan.model_copy(update={"order_id": "ORD-1", "package_id": "ORD-1-P1"})
        assert encode_scan(routed) == routed.model_dump_json().encode()
        assert order_events_batch_adapter.validate_json(b"[" + encode_scan(routed) + b"]") == [routed]


def test_a_scan_time_with_seconds_in_its_offset_reaches_the_order_at_the_same_instant() -> None:
    """JSON writers keep an offset's whole minutes (pydantic cuts, msgspec rounds): a carrier time
    at +05:30:45 is kept as the same instant in UTC, so the order hop cannot move it."""
    from datetime import UTC, datetime

    import orjson

    from models.carriers import parse_payload
    from models.codec import encode_scan

    event = orjson.loads((Path(__file__).parents[1] / "payloads" / "easypost_tracker_updated.json").read_bytes())
    detail = event["result"]["tracking_details"][0]
    detail["datetime"] = "2026-11-02T14:00:00+05:30:45"
    scans, _ = parse_payload("easypost", orjson.dumps(event), datetime(2026, 11, 2, 12, tzinfo=UTC))
    sent = scans[0]
    assert sent.occurred_at == datetime(2026, 11, 2, 8, 29, 15, tzinfo=UTC)
    (received,) = order_events_batch_adapter.validate_json(b"[" + encode_scan(sent) + b"]")
    assert received.occurred_at == sent.occurred_at
