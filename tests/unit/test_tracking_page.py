"""The customer's tracking page: tokens nobody can forge, and what the page says about an
order built by the real rules from the documented payloads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from models.carriers import parse_payload
from models.fulfillment import parse_fulfillment_event
from models.order import apply
from models.tracking_page import order_in_token, page_view, tracking_page_url, tracking_token

PAYLOADS = Path(__file__).parents[1] / "payloads"
KEYS = {"k2": "new-key-0123456789abcdef", "k1": "old-key-0123456789abcdef"}


def test_a_token_names_its_order_under_every_configured_key() -> None:
    for key_id, key in KEYS.items():
        assert order_in_token(tracking_token("ORD-1", key_id, key), KEYS) == "ORD-1"
    # A key taken out of the configuration retires its links.
    assert order_in_token(tracking_token("ORD-1", "k1", KEYS["k1"]), {"k2": KEYS["k2"]}) is None


def test_forged_tokens_name_no_order() -> None:
    genuine = tracking_token("ORD-1", "k2", KEYS["k2"])
    encoded, key_id, mac = genuine.split(".")
    other = tracking_token("ORD-2", "k2", KEYS["k2"]).split(".")[0]
    forged = [
        f"{other}.{key_id}.{mac}",  # another order id under this order's MAC
        f"{encoded}.k1.{mac}",  # the MAC under another key's id
        f"{encoded}.{key_id}.{mac[:-2]}AA",
        tracking_token("ORD-1", "k2", "a-key-trackline-never-had"),
        tracking_token("ORD-1", "k9", KEYS["k2"]),  # unknown key id
        "", "...", "a.b", "a.b.c.d", f"{encoded}.{key_id}.", f"!!!.{key_id}.{mac}",
    ]
    for token in forged:
        assert order_in_token(token, KEYS) is None, token


@given(st.text(max_size=80))
def test_any_string_is_either_a_genuine_token_or_nothing(token: str) -> None:
    found = order_in_token(token, KEYS)
    assert found is None or tracking_token(found, token.split(".")[1], KEYS[token.split(".")[1]]) == token


@given(st.text(min_size=1, max_size=60))
def test_every_order_id_round_trips(order_id: str) -> None:
    assert order_in_token(tracking_token(order_id, "k2", KEYS["k2"]), KEYS) == order_id


def test_the_url_is_the_configured_base_and_the_token() -> None:
    url = tracking_page_url("https://shop.example/", "ORD-1", "k2", KEYS["k2"])
    assert url == f"https://shop.example/track/{tracking_token('ORD-1', 'k2', KEYS['k2'])}"


def order_through_the_documented_generic_feed():
    """The documented fulfillment example shipped with the generic example's tracking number,
    then the generic example's scans (in transit, attempt failed, ready at a locker)."""
    placed = parse_fulfillment_event((PAYLOADS / "fulfillment_order_placed.json").read_bytes())
    at = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
    shipped = parse_fulfillment_event(
        b'{"type": "package_shipped", "event_id": "s1", "order_id": "ORD-000123", "occurred_at": '
        b'"2026-11-03T08:00:00Z", "package_id": "P1", "carrier": "acme-courier", "tracking_number": "AC1234567"}')
    state, _ = apply(None, placed.model_copy(update={"ingested_at": at}))
    state, _ = apply(state, shipped.model_copy(update={"ingested_at": at}))
    scans, _ = parse_payload("generic", (PAYLOADS / "generic_carrier_events.json").read_bytes(),
                             at + timedelta(days=1, hours=2))
    for scan in scans:
        state, _ = apply(state, scan.model_copy(update={"order_id": state.order_id, "package_id": "P1"}))
    return state


def test_the_page_shows_status_pickup_and_a_timeline_in_the_delivery_time_zone() -> None:
    state = order_through_the_documented_generic_feed()
    view = page_view(state)
    assert view["status"] == "On its way"
    assert view["time_zone"] == "Europe/Berlin"
    assert view["promised"] == "Wed 04 Nov 2026"
    [package] = view["packages"]
    assert package["status"] == "Ready for pickup"
    # The locker, its code and deadline (20:00 UTC = 21:00 in Berlin) as the carrier sent them.
    assert package["pickup"] == {"place": "Locker 12, Main St", "code": "4711", "deadline": "Sat 07 Nov 2026, 21:00"}
    # Newest first; 10:00 UTC departed = 11:00 in Berlin.
    assert package["timeline"][-1] == {"when": "Tue 03 Nov 2026, 11:00", "what": "Departed hub", "where": "Reno, NV"}
    assert [e["what"] for e in package["timeline"]][:1] == ["Ready at locker"]
    assert "alerts" not in view


def test_a_package_with_a_problem_says_what_to_do() -> None:
    state = order_through_the_documented_generic_feed()
    at = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)
    scans, _ = parse_payload("generic", (
        b'{"carrier": "acme-courier", "tracking_number": "AC1234567", "events": [{"status": "exception", '
        b'"code": "AD", "message": "Incorrect address", "occurred_at": "2026-11-05T09:00:00Z", '
        b'"reason": "address_issue"}]}'), at)
    for scan in scans:
        state, _ = apply(state, scan.model_copy(update={"order_id": state.order_id, "package_id": "P1"}))
    [package] = page_view(state)["packages"]
    assert package["status"] == "Problem with the delivery"
    assert "Check your delivery address" in package["what_to_do"]
    assert package["pickup"] is None


def test_only_the_support_view_lists_open_detections() -> None:
    state = order_through_the_documented_generic_feed()
    state, _ = apply(state, _tick(state, datetime(2026, 11, 20, tzinfo=UTC)))
    assert state.open_alerts(), "the scenario should have left an alert open"
    assert "alerts" not in page_view(state)
    assert [a["kind"] for a in page_view(state, alerts=True)["alerts"]] == [
        a.alert_kind.value.replace("_", " ") for a in state.open_alerts()]


def _tick(state, now):
    from models.events import ClockTick

    return ClockTick(event_id=f"tick-{now.isoformat()}", order_id=state.order_id, occurred_at=now, ingested_at=now)
