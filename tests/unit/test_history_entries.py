"""Leaving out history entries already routed: the payloads documented by EasyPost, AfterShip
and Shippo (tests/payloads), with any set of their entries known."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.carriers import parse_payload
from models.carriers.history import ENTRY_TIMES, HISTORIES, fingerprint, leave_out, newest
from models.errors import InvalidPayload

PAYLOADS = Path(__file__).parents[1] / "payloads"
DOCUMENTED = {
    "easypost": (PAYLOADS / "easypost_tracker_updated.json").read_bytes(),
    "aftership": (PAYLOADS / "aftership_tracking_update.json").read_bytes(),
    "shippo": (PAYLOADS / "shippo_track_updated.json").read_bytes(),
}
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def entries_and_prints(source: str, raw: bytes) -> tuple[list, list[bytes]]:
    holder_field, entries_field, carrier_field = HISTORIES[source]
    holder = orjson.loads(raw)[holder_field]
    number = holder["tracking_code" if source == "easypost" else "tracking_number"]
    entries = holder[entries_field]
    return entries, [fingerprint(source, holder[carrier_field], number, e) for e in entries]


@pytest.mark.parametrize("source", sorted(DOCUMENTED))
def test_every_documented_history_has_several_entries(source: str) -> None:
    entries, prints = entries_and_prints(source, DOCUMENTED[source])
    assert len(entries) >= 2 and len(set(prints)) == len(prints)


@pytest.mark.parametrize("source", sorted(DOCUMENTED))
@given(data=st.data())
def test_the_entries_left_out_are_exactly_the_known_ones(source: str, data: st.DataObject) -> None:
    raw = DOCUMENTED[source]
    everything = parse_payload(source, raw, NOW).scans
    entries, prints = entries_and_prints(source, raw)
    known = set(data.draw(st.sets(st.sampled_from(prints))))
    new = leave_out(source, raw, known.__contains__)
    assert new is not None
    # The envelope is still read, with the newest entry (the estimate goes with it).
    kept = [i for i, p in enumerate(prints) if p not in known] or [newest(entries, ENTRY_TIMES[source])]
    assert new.fingerprints == [prints[i] for i in kept]
    assert new.left_out == len(entries) - len(kept)
    assert parse_payload(source, new.document, NOW).scans == [everything[i] for i in kept]


@pytest.mark.parametrize("source", sorted(DOCUMENTED))
@given(data=st.data())
def test_with_every_entry_known_the_newest_scan_carries_the_envelope(source: str, data: st.DataObject) -> None:
    """An estimate-only webhook (every entry routed) from a feed that lists its history in any
    order: the entry kept is the newest scan, which is the one the order takes an estimate from."""
    holder_field, entries_field, _ = HISTORIES[source]
    document = orjson.loads(DOCUMENTED[source])
    document[holder_field][entries_field] = data.draw(st.permutations(document[holder_field][entries_field]))
    raw = orjson.dumps(document)
    _, prints = entries_and_prints(source, raw)
    new = leave_out(source, raw, lambda _: True)
    assert new is not None and new.left_out == len(prints) - 1
    everything = parse_payload(source, raw, NOW).scans
    kept = parse_payload(source, new.document, NOW).scans
    assert [scan.occurred_at for scan in kept] == [max(scan.occurred_at for scan in everything)]


def test_an_entry_time_that_does_not_read_keeps_the_last_entry() -> None:
    from models.carriers import easypost

    entries = [{"datetime": "2026-11-02T10:00:00Z"}, {"datetime": "yesterday"}, {"datetime": "2026-11-01T10:00:00Z"}]
    assert newest(entries, easypost.entry_time) == 2
    assert newest([{"datetime": "2026-11-02T10:00:00Z"}, "not an entry", {"datetime": 7}], easypost.entry_time) == 2


def test_an_entry_nested_too_deep_to_fingerprint_is_parsed_as_it_came() -> None:
    document = orjson.loads(DOCUMENTED["easypost"])
    deep: dict = {}
    for _ in range(300):
        deep = {"x": deep}
    document["result"]["tracking_details"][-1]["extra"] = deep
    import json  # orjson writes at most 254 levels; a carrier's bytes may hold more

    assert leave_out("easypost", json.dumps(document).encode(), lambda _: True) is None


def test_the_newest_entry_is_read_in_the_zone_of_its_place_as_the_adapter_reads_it() -> None:
    """AfterShip's checkpoint times are often local without an offset: 21:00 in California is
    later than 23:00 in New York; epoch seconds count too."""
    from models.carriers import aftership

    california = {"checkpoint_time": "2026-11-02T21:00:00", "country_region": "US", "state": "CA"}
    new_york = {"checkpoint_time": "2026-11-02T23:00:00", "country_region": "US", "state": "NY"}
    assert newest([california, new_york], aftership.entry_time) == 0
    epoch = {"checkpoint_time": int(datetime(2026, 11, 3, 12, tzinfo=UTC).timestamp())}
    assert newest([epoch, california, new_york], aftership.entry_time) == 0


def test_a_bad_entry_is_kept_and_still_refused() -> None:
    document = orjson.loads(DOCUMENTED["easypost"])
    document["result"]["tracking_details"].append({"status": 42, "datetime": "2024-01-01T00:00:00Z"})
    raw = orjson.dumps(document)
    _, prints = entries_and_prints("easypost", raw)
    new = leave_out("easypost", raw, set(prints[:-1]).__contains__)
    assert new is not None and new.left_out == len(prints) - 1
    with pytest.raises(InvalidPayload) as refused:
        parse_payload("easypost", new.document, NOW)
    assert refused.value.reason == "invalid_field"


@pytest.mark.parametrize("raw", [b"{", b"[]", b'{"result": []}', b'{"result": {"tracking_details": "x"}}',
                                 b'{"result": {"tracking_details": []}}'])
def test_what_is_not_the_documented_shape_is_parsed_as_it_came(raw: bytes) -> None:
    assert leave_out("easypost", raw, lambda _: True) is None


def test_formats_without_a_history_are_parsed_as_they_came() -> None:
    assert leave_out("x12-214", (PAYLOADS / "x12_214_parcel_summer.edi").read_bytes(), lambda _: True) is None
    assert leave_out("generic", (PAYLOADS / "generic_carrier_events.json").read_bytes(), lambda _: True) is None
