"""The contracts under docs/schemas/: what the teams around trackline build against.

A producer whose records pass a schema must have them accepted, one whose records fail it must
have them refused, and a consumer validating against a schema must accept every record the
worker writes. Each check reads the committed file, as those teams do, with jsonschema.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from models.carriers import generic
from models.effects import Alert, NotificationCommand
from models.errors import InvalidPayload
from models.events import PackageStatus
from models.fulfillment import parse_fulfillment_event
from models.preferences import address, parse_preferences
from models.routing import UnmatchedCheck, unmatched_effects
from models.schemas import PUBLIC, json_schema
from tests.conftest import PAYLOADS, T0, at, placed, run, scan, shipped, tick
from trackline.cli import main

ROOT = Path(__file__).parents[2]
SCHEMAS = ROOT / "docs" / "schemas"
HOUR = 60
S = PackageStatus

# jsonschema checks "date-time" only when rfc3339-validator is installed: check it here, as RFC 3339
# says (an offset is required), so a time without one fails as it would in a stricter validator.
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parsed = datetime.fromisoformat(value)
    return "T" in value.upper() and parsed.tzinfo is not None


def problems(name: str, message: Any) -> list[str]:
    schema = json.loads((SCHEMAS / PUBLIC[name].file_name).read_text())
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema, format_checker=FORMATS)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(message)]


@pytest.mark.parametrize("name", PUBLIC)
def test_the_committed_schema_is_what_the_models_say(name):
    committed = SCHEMAS / PUBLIC[name].file_name
    assert committed.exists() and json.loads(committed.read_text()) == json_schema(name), (
        f"{committed.relative_to(ROOT)} is out of date: regenerate with `trackline schema --write docs/schemas`")


def test_docs_schemas_holds_exactly_the_public_topics_and_the_readme_links_each():
    assert {p.name for p in SCHEMAS.iterdir()} == {t.file_name for t in PUBLIC.values()}
    readme = (ROOT / "README.md").read_text()
    assert [t.file_name for t in PUBLIC.values() if f"docs/schemas/{t.file_name}" not in readme] == []


def test_trackline_schema_writes_the_committed_files_and_prints_one_by_its_topic(tmp_path, capsys):
    assert main(["schema", "--write", str(tmp_path)]) == 0
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {p.name: p.read_text() for p in SCHEMAS.iterdir()}
    capsys.readouterr()
    assert main(["schema", "trackline.notifications"]) == 0
    assert capsys.readouterr().out == (SCHEMAS / "notifications.schema.json").read_text()


ORDER = json.loads((PAYLOADS / "fulfillment_order_placed.json").read_text())
PREFERENCES = json.loads((PAYLOADS / "customer_preferences.json").read_text())
SCANS = json.loads((PAYLOADS / "generic_carrier_events.json").read_text())


def without(message: dict, field: str) -> dict:
    return {k: v for k, v in message.items() if k != field}


def first_scan(**fields: Any) -> dict:
    return {**SCANS, "events": [{**SCANS["events"][0], **fields}]}


PARSERS = {"fc-events": parse_fulfillment_event, "customer-preferences": parse_preferences,
           "generic-carrier": lambda raw: generic.parse(raw, T0)}


def accepted_by_trackline(name: str, message: Any) -> bool:
    try:
        PARSERS[name](json.dumps(message).encode())
    except InvalidPayload:
        return False
    return True


INPUTS = [
    pytest.param("fc-events", ORDER, True, id="order-placed-sample"),
    pytest.param("fc-events", without(ORDER, "promised_delivery_date"), False, id="order-without-promise"),
    pytest.param("fc-events", {**ORDER, "occurred_at": "2026-11-02T08:00:00"}, False, id="order-time-without-offset"),
    pytest.param("fc-events", {**ORDER, "type": "order_teleported"}, False, id="order-unknown-type"),
    pytest.param("fc-events", {**ORDER, "items": "SKU-1"}, False, id="order-items-not-a-list"),
    pytest.param("customer-preferences", PREFERENCES, True, id="preferences-sample"),
    pytest.param("customer-preferences", {"customer_id": "CUST-1"}, True, id="preferences-defaults"),
    pytest.param("customer-preferences", without(PREFERENCES, "customer_id"), False, id="preferences-no-customer"),
    pytest.param("customer-preferences", {**PREFERENCES, "channels": ["pigeon"]}, False, id="preferences-channel"),
    pytest.param("customer-preferences", {**PREFERENCES, "channels": []}, False, id="preferences-no-channel"),
    pytest.param("customer-preferences", {**PREFERENCES, "quiet_hours": {"start": "22:00"}}, False,
                 id="preferences-quiet-hours-without-end"),
    pytest.param("customer-preferences", {**PREFERENCES, "email": "not an address"}, False, id="preferences-email"),
    pytest.param("generic-carrier", SCANS, True, id="generic-sample"),
    pytest.param("generic-carrier", {**SCANS, "tracking_number": 1234567, "estimated_delivery": None}, True,
                 id="generic-integer-tracking-number"),
    pytest.param("generic-carrier", {**SCANS, "events": []}, True, id="generic-no-events"),
    pytest.param("generic-carrier", first_scan(status="teleported", code=None, message=None), True,
                 id="generic-unknown-status"),
    pytest.param("generic-carrier", first_scan(occurred_at="2026-11-03 10:00"), True, id="generic-local-time"),
    pytest.param("generic-carrier", without(SCANS, "events"), False, id="generic-without-events"),
    pytest.param("generic-carrier", {**SCANS, "tracking_number": True}, False, id="generic-boolean-tracking-number"),
    pytest.param("generic-carrier", {**SCANS, "tracking_number": "  "}, False, id="generic-blank-tracking-number"),
    pytest.param("generic-carrier", {**SCANS, "carrier": "--"}, False, id="generic-no-carrier-name"),
    pytest.param("generic-carrier", {**SCANS, "events": {"status": "delivered"}}, False, id="generic-events-object"),
    pytest.param("generic-carrier", first_scan(occurred_at=None), False, id="generic-scan-without-time"),
    pytest.param("generic-carrier", first_scan(occurred_at=1793700000), False, id="generic-epoch-time"),
    pytest.param("generic-carrier", first_scan(occurred_at="1969-12-31T23:59:00Z"), False, id="generic-time-too-old"),
    pytest.param("generic-carrier", first_scan(pickup_code=["4711"]), False, id="generic-pickup-code-list"),
]


@pytest.mark.parametrize(("name", "message", "accepted"), INPUTS)
def test_trackline_accepts_what_the_schema_accepts_and_refuses_what_it_refuses(name, message, accepted):
    found = problems(name, message)
    assert (not found, accepted_by_trackline(name, message)) == (accepted, accepted), found


def test_the_generic_sample_becomes_one_scan_per_event():
    assert problems("generic-carrier", SCANS) == []
    assert len(generic.parse(json.dumps(SCANS).encode(), T0)) == len(SCANS["events"])


# A journey with a warehouse delay, a pickup point and a delivery: the effects the worker publishes.
JOURNEY = [placed(), tick(12 * HOUR), tick(12 * HOUR + 30), shipped().model_copy(update={"occurred_at": at(14 * HOUR)}),
           scan(S.in_transit, 15 * HOUR),
           scan(S.available_for_pickup, 30 * HOUR, location="Locker 12", pickup_code="4711",
                pickup_deadline=at(80 * HOUR)),
           scan(S.delivered, 40 * HOUR, location="Locker 12")]


def published_commands() -> list[dict]:
    """Commands as the notification policy writes them to trackline.notifications: addressed."""
    _, effects = run(JOURNEY)
    customers = [parse_preferences((PAYLOADS / "customer_preferences.json").read_bytes()), None]
    addressed = [address(e, prefs)[0] for e in effects if isinstance(e, NotificationCommand) for prefs in customers]
    return [json.loads(c.model_dump_json()) for c in addressed if c is not None]


def published_alerts() -> list[dict]:
    _, effects = run(JOURNEY)
    unmatched = scan(S.in_transit, 200, order_id="", tracking="AC404")
    effects += unmatched_effects([unmatched], UnmatchedCheck(at(300), timedelta(hours=1)))
    return [json.loads(e.model_dump_json()) for e in effects if isinstance(e, Alert)]


def test_every_command_the_worker_publishes_passes_the_notifications_schema():
    commands = published_commands()
    assert {"order_confirmed", "delayed", "shipped", "ready_for_pickup", "delivered"} <= {c["type"] for c in commands}
    assert {c["command_id"]: problems("notifications", c) for c in commands if problems("notifications", c)} == {}


def test_a_consumer_is_told_what_to_rely_on_and_what_may_change():
    command = published_commands()[0]
    assert problems("notifications", {**command, "send_after": None})  # an intent the policy has not addressed
    assert problems("notifications", without(command, "command_id"))
    assert problems("notifications", {**command, "channels": "email"})
    assert problems("notifications", {**command, "occurred_at": "2026-11-02 08:00"})
    # Open enums: an update type or channel a later trackline adds still passes.
    assert problems("notifications", {**command, "type": "parcel_teleported", "channels": ["carrier_pigeon"]}) == []
    assert problems("notifications", {**command, "type": 7})


def test_every_alert_the_worker_publishes_passes_the_alerts_schema():
    alerts = published_alerts()
    assert {(a["alert_kind"], a["state"]) for a in alerts} >= {
        ("warehouse_delay", "open"), ("warehouse_delay", "closed"), ("unmatched_scans", "open")}
    assert [problems("alerts", a) for a in alerts] == [[] for _ in alerts]
    opened = alerts[0]
    assert problems("alerts", {**opened, "state": "snoozed"})
    assert problems("alerts", without(opened, "due_at"))
    assert problems("alerts", {**opened, "alert_kind": "drone_lost"}) == []  # open: a later kind passes
