"""Every parser of outside input turns every input into a result or ``InvalidPayload``, nothing else.

Inputs: (a) any bytes; (b) each format's documented payload (tests/payloads/) mutated at any
path: a value replaced by a wrong type (object, list, number, bool, null, empty or huge
string, huge int, NaN/Infinity), a key deleted, a key duplicated in the raw text, a value
nested past orjson's depth limit, an impossible date. A fixed, modest number of examples per
format keeps the unit suite fast; Hypothesis keeps failing examples in its database.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import DataObject

from models.carriers import parse_carrier_payload
from models.errors import DLQ_REASONS, InvalidPayload
from models.events import CarrierScan, OrderPlaced
from models.fulfillment import parse_fulfillment_event
from models.preferences import CustomerPreferences, parse_preferences
from tests.conftest import PAYLOADS, T0

CARRIER_FORMATS = {
    "easypost": "easypost_tracker_updated.json",
    "aftership": "aftership_tracking_update.json",
    "shippo": "shippo_track_updated.json",
    "generic": "generic_carrier_events.json",
}
JSON_FORMATS = {**CARRIER_FORMATS, "fulfillment": "fulfillment_order_placed.json",
                "preferences": "customer_preferences.json"}
ALL_FORMATS = [*JSON_FORMATS, "x12-214"]
# Modest by default so the unit suite stays fast; TRACKLINE_FUZZ_EXAMPLES=25000 for a long run.
MUTATION_EXAMPLES = int(os.environ.get("TRACKLINE_FUZZ_EXAMPLES", "300"))
BYTES_EXAMPLES = max(MUTATION_EXAMPLES // 2, 1)


def parse(fmt: str, raw: bytes) -> object:
    if fmt == "fulfillment":
        return parse_fulfillment_event(raw)
    if fmt == "preferences":
        return parse_preferences(raw)
    return parse_carrier_payload(fmt, raw, T0)


def check(fmt: str, raw: bytes) -> None:
    """The property: a well-typed result, or InvalidPayload with a documented reason."""
    try:
        result = parse(fmt, raw)
    except InvalidPayload as exc:
        assert exc.reason in DLQ_REASONS
        return
    if fmt == "fulfillment":
        assert result.occurred_at.tzinfo is not None
    elif fmt == "preferences":
        assert isinstance(result, CustomerPreferences)
    else:
        assert isinstance(result, list)
        for scan in result:
            assert isinstance(scan, CarrierScan)
            assert scan.occurred_at.tzinfo is not None and scan.tracking_number and scan.carrier


# --- raw JSON text with what json.dumps cannot say: duplicate keys, huge ints, deep nesting ---

@dataclass(frozen=True)
class Pairs:
    """An object written key by key, so a key can appear twice."""

    items: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class RawText:
    text: str


def encode(value: Any) -> str:
    if isinstance(value, RawText):
        return value.text
    if isinstance(value, Pairs):
        return "{" + ",".join(f"{json.dumps(k)}:{encode(v)}" for k, v in value.items) + "}"
    if isinstance(value, dict):
        return encode(Pairs(tuple(value.items())))
    if isinstance(value, list):
        return "[" + ",".join(encode(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return json.dumps(value)  # NaN / Infinity: not JSON, some producers send it anyway
    return json.dumps(value)


def deep(depth: int, inner: str = "1") -> RawText:
    return RawText("[" * depth + inner + "]" * depth)


IMPOSSIBLE_TIMES = [
    "2024-02-30T10:00:00Z", "2024-13-01T00:00:00Z", "2024-01-01T25:00:00Z", "2024-01-01T23:59:60Z",
    "0000-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59",
    "2024-01-01T10:00:00+24:00", "2024-02-30", "yesterday", "2024-03-10T02:30:00", "2024-11-03T01:30:00",
    "1969-12-31T23:59:59Z", "\u0662\u0660\u0662\u0664-01-01", "2024-01-01T10:00:00\x00",
]
WRONG_VALUES = st.one_of(
    st.none(), st.booleans(), st.just(""), st.just(" "), st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([math.nan, math.inf, -math.inf]),
    st.text(max_size=20), st.just("x" * 100_000), st.sampled_from([2**64, -(2**70), 10**400]),
    st.just([]), st.just({}), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=4),
                                                                                   st.integers(), max_size=2),
    st.sampled_from(IMPOSSIBLE_TIMES), st.sampled_from(["tracker.updated", "tracking_update", "track_updated",
                                                        "order_placed", "Exception_007", "AttemptFail_002"]),
    st.integers(min_value=-(2**40), max_value=2**40),  # epoch-like numbers
).map(lambda v: RawText(str(v)) if isinstance(v, int) and abs(v) >= 2**63 else v)


def paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*here, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*here, index))
    return found


def parent_of(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        document = document[step]
    return document


def mutate(document: Any, data: DataObject) -> Any:
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        targets = [p for p in paths(document) if p]
        if not targets:
            break
        path = data.draw(st.sampled_from(targets), label="path")
        holder, last = parent_of(document, path), path[-1]
        if not isinstance(holder, dict | list):
            continue
        operation = data.draw(st.sampled_from(["replace", "replace", "replace", "delete", "duplicate", "deep"]),
                              label="operation")
        if operation == "replace":
            holder[last] = data.draw(WRONG_VALUES, label="value")
        elif operation == "deep":
            holder[last] = deep(data.draw(st.sampled_from([200, 1100, 5000]), label="depth"))
        elif operation == "delete":
            if isinstance(holder, dict):
                del holder[last]
            else:
                holder.pop(last)
        elif isinstance(holder, dict):  # duplicate: the key again, later in the text, with another value
            items = tuple(holder.items()) + ((last, data.draw(WRONG_VALUES, label="duplicate")),)
            replace_in(document, path[:-1], Pairs(items))
            break  # a Pairs node has no paths of its own: stop mutating this document
    return document


def replace_in(document: Any, path: tuple[Any, ...], value: Any) -> None:
    if not path:
        raise _Root(value)
    parent_of(document, path)[path[-1]] = value


class _Root(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


def documented(fmt: str) -> Any:
    return orjson.loads((PAYLOADS / JSON_FORMATS[fmt]).read_bytes())


FUZZ = settings(max_examples=MUTATION_EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("fmt", list(JSON_FORMATS))
def test_documented_payloads_parse(fmt):
    result = parse(fmt, (PAYLOADS / JSON_FORMATS[fmt]).read_bytes())
    assert result and (not isinstance(result, OrderPlaced) or result.delivery_time_zone == "Europe/Berlin")


@pytest.mark.parametrize("fmt", ALL_FORMATS)
@settings(max_examples=BYTES_EXAMPLES, deadline=None)
@given(raw=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_any_bytes_are_a_result_or_invalid_payload(fmt, raw):
    check(fmt, raw)


@pytest.mark.parametrize("fmt", list(JSON_FORMATS))
@FUZZ
@given(data=st.data())
def test_mutated_documented_payloads_are_a_result_or_invalid_payload(fmt, data):
    document = documented(fmt)
    try:
        document = mutate(document, data)
    except _Root as root:
        document = root.value
    check(fmt, encode(document).encode())


X12_ELEMENTS = st.one_of(st.just(""), st.text(alphabet="0123456789ABCDEFXZ- :.", max_size=12),
                         st.sampled_from(["20240230", "20261399", "2599", "9999", "LT", "ZZ", "00000000"]))


@pytest.mark.parametrize("fmt", ["x12-214"])
@FUZZ
@given(data=st.data())
def test_mutated_x12_214_is_a_result_or_invalid_payload(fmt, data):
    text = (PAYLOADS / "x12_214_two_shipments.edi").read_text()
    segments = text.split("~")
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        index = data.draw(st.integers(0, len(segments) - 1), label="segment")
        elements = segments[index].split("*")
        operation = data.draw(st.sampled_from(["element", "element", "drop", "repeat"]), label="operation")
        if operation == "element":
            position = data.draw(st.integers(0, len(elements)), label="element")
            value = data.draw(X12_ELEMENTS, label="value")
            if position < len(elements):
                elements[position] = value
            else:
                elements.append(value)
            segments[index] = "*".join(elements)
        elif operation == "drop":
            segments.pop(index)
        else:
            segments.insert(index, segments[index])
        if not segments:
            break
    check(fmt, "~".join(segments).encode())


# --- regressions: inputs the fuzz found, kept as plain examples -----------------------------

def put(document: Any, path: tuple[Any, ...], value: Any) -> bytes:
    parent_of(document, path)[path[-1]] = value
    return encode(document).encode()


@pytest.mark.parametrize("fmt, path, value, reason", [
    # unhashable description in `description not in EVENT_TYPES`
    ("easypost", ("description",), {"a": 1}, "invalid_field"),
    ("easypost", ("description",), ["tracker.updated"], "invalid_field"),
    ("easypost", ("result", "tracking_details", 0, "status"), {"x": 1}, "invalid_field"),
    ("easypost", ("result", "tracking_details", 1, "tracking_location"), "HOUSTON TX", "invalid_field"),
    ("easypost", ("result", "tracking_details", 1, "tracking_location", "city"), 77063, "invalid_field"),
    ("easypost", ("result", "tracking_details", 0, "datetime"), "2024-02-30T10:00:00Z", "invalid_field"),
    ("easypost", ("result", "tracking_code"), True, "invalid_field"),
    ("easypost", ("result", "carrier"), "---", "missing_field"),
    ("easypost", ("result", "est_delivery_date"), 20240124, "invalid_field"),
    ("aftership", ("event",), ["tracking_update"], "invalid_field"),
    ("aftership", ("msg", "checkpoints", 0, "checkpoint_time"), True, "invalid_field"),
    ("aftership", ("msg", "checkpoints", 0, "checkpoint_time"), 10**15, "invalid_field"),
    ("aftership", ("msg", "checkpoints", 0, "checkpoint_time"), -1, "invalid_field"),
    ("aftership", ("msg", "checkpoints", 0, "checkpoint_time"), 1.5e9, "invalid_field"),
    ("aftership", ("msg", "checkpoints", 0, "checkpoint_time"), "0001-01-01T00:00:00+14:00", "invalid_field"),
    ("aftership", ("msg", "checkpoints", 0, "checkpoint_time"), "9999-12-31T23:59:59", "invalid_field"),
    ("aftership", ("msg", "checkpoints", 0, "tag"), ["InTransit"], "invalid_field"),
    ("aftership", ("msg", "checkpoints", 0, "state"), {"code": "KY"}, "invalid_field"),
    ("aftership", ("msg", "slug"), 42, "invalid_field"),
    ("shippo", ("data", "tracking_history", 0, "substatus"), "information_received", "invalid_field"),
    ("shippo", ("data", "tracking_history", 0, "substatus", "code"), ["x"], "invalid_field"),
    ("shippo", ("data", "tracking_history", 0, "substatus", "action_required"), "yes", "invalid_field"),
    ("shippo", ("data", "tracking_history", 0, "location"), [1, 2], "invalid_field"),
    ("shippo", ("data", "tracking_history", 0, "status_date"), 1706000000, "invalid_field"),
    ("shippo", ("data", "tracking_history"), {"0": {}}, "invalid_field"),
    ("shippo", ("data", "eta"), "2024-13-45", "invalid_field"),
    ("generic", ("events", 0, "code"), {"c": 1}, "invalid_field"),
    ("generic", ("events", 0, "location"), ["Reno"], "invalid_field"),
    ("generic", ("events", 2, "pickup_deadline"), ["2026-11-07"], "invalid_field"),
    ("generic", ("events",), "none", "invalid_field"),
    ("fulfillment", ("delivery_time_zone",), "America", "invalid_field"),  # a directory of zones: OSError
    ("fulfillment", ("delivery_time_zone",), "a" * 300, "invalid_field"),  # file name too long: OSError
    ("fulfillment", ("items", 0, "quantity"), RawText(str(-(2**80))), "invalid_field"),
    ("fulfillment", ("items",), deep(3000), "malformed_json"),
    ("fulfillment", ("occurred_at",), "2026-11-02T08:00:00", "invalid_field"),
    ("preferences", ("time_zone",), "America", "invalid_field"),
    ("preferences", ("time_zone",), "a" * 300, "invalid_field"),
    ("preferences", ("quiet_hours",), "22:00-07:00", "invalid_field"),
])
def test_wrong_types_found_by_the_fuzz_are_invalid_payloads(fmt, path, value, reason):
    raw = put(documented(fmt), path, value)
    with pytest.raises(InvalidPayload) as caught:
        parse(fmt, raw)
    assert caught.value.reason == reason


@pytest.mark.parametrize("fmt", list(JSON_FORMATS))
@pytest.mark.parametrize("raw", [
    deep(5000).text.encode(), b'{"a":' * 3000 + b"1" + b"}" * 3000, b"\xff\xfe{}", b'{"a": NaN}',
    b'{"a": 1e400}', ("{" + '"k":' + str(2**64) + "}").encode(),
])
def test_unreadable_json_is_an_invalid_payload(fmt, raw):
    with pytest.raises(InvalidPayload) as caught:
        parse(fmt, raw)
    assert caught.value.reason in ("malformed_json", "missing_field", "invalid_field")


def test_a_duplicated_key_reads_as_its_last_value():
    text = (PAYLOADS / "easypost_tracker_updated.json").read_text()
    raw = text.replace('"description": "tracker.updated",',
                       '"description": "tracker.updated", "description": "batch.created",').encode()
    with pytest.raises(InvalidPayload) as caught:
        parse("easypost", raw)
    assert caught.value.reason == "unsupported_event"

