"""What the ingest service decides about one HTTP request, as pure functions.

``POST /webhooks/{source}`` and ``POST /events/fc``: which topic the raw bytes go to, whether
the signature holds (each source's own scheme, see ``webhook_signatures``), and the key the
bytes travel under. The service parses nothing else: the stream parses, so a parser fix can
replay what arrived, and a body the stream cannot read is dead-lettered there with its reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import orjson

from models import topics
from models.webhook_signatures import (
    AFTERSHIP_HEADER,
    EASYPOST_HEADER,
    SHIPPO_TOKEN_PARAMETER,
    TRACKLINE_HEADER,
    Verdict,
    verify_aftership,
    verify_easypost,
    verify_shippo,
    verify_trackline,
)

RECEIVED_AT_HEADER = "trackline-received-at"  # ISO 8601 UTC, when the ingest service accepted the body


@dataclass(frozen=True)
class Door:
    """One endpoint: the source named in the path and the settings, and where its bytes go."""

    source: str  # as the stream's adapters name it (the trackline-source header)
    setting: str  # the settings' secret_<setting> holds its secrets
    topic: str


DOORS: dict[str, Door] = {
    "easypost": Door("easypost", "easypost", topics.CARRIER_SCANS_RAW),
    "aftership": Door("aftership", "aftership", topics.CARRIER_SCANS_RAW),
    "shippo": Door("shippo", "shippo", topics.CARRIER_SCANS_RAW),
    "generic": Door("generic", "generic", topics.CARRIER_SCANS_RAW),
    "x12-214": Door("x12-214", "x12_214", topics.CARRIER_SCANS_RAW),
    "fc": Door("fc", "fc", topics.FC_EVENTS),
}


def verify(door: Door, body: bytes, headers: Mapping[str, str], query: Mapping[str, str],
           secrets: Iterable[str], now: datetime) -> Verdict:
    """The request's signature under the door's scheme; ``now`` is the receiver's clock
    (processing time: only trackline's own scheme has a replay window)."""
    secrets = list(secrets)
    if not secrets:  # nothing configured: nobody can sign, so nobody gets in
        return Verdict.mismatch
    if door.source == "aftership":
        return verify_aftership(body, headers.get(AFTERSHIP_HEADER), secrets)
    if door.source == "easypost":
        return verify_easypost(body, headers.get(EASYPOST_HEADER), secrets)
    if door.source == "shippo":
        return verify_shippo(query.get(SHIPPO_TOKEN_PARAMETER), secrets)
    return verify_trackline(body, headers.get(TRACKLINE_HEADER), secrets, now)


def fallback_key(door: Door) -> bytes:
    """The key of a body whose own key cannot be read: the stream dead-letters it with the reason."""
    return f"unkeyed:{door.source}".encode()


def message_key(door: Door, body: bytes) -> bytes | None:
    """The tracking number (order id for fulfillment events) the body is about, read without
    parsing the rest; None when it cannot be read. Several shipments in one body (an X12
    interchange) travel under the first one's number: the router re-keys the others."""
    if door.source == "x12-214":
        return _x12_tracking_number(body)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    path = {
        "easypost": ("result", "tracking_code"),
        "aftership": ("msg", "tracking_number"),
        "shippo": ("data", "tracking_number"),
        "generic": ("tracking_number",),
        "fc": ("order_id",),
    }[door.source]
    value: object = document
    for name in path:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    if not isinstance(value, str) or not value:
        return None
    return value.encode()


def _x12_tracking_number(body: bytes) -> bytes | None:
    # ISA fixes its own layout: the element separator is byte 3, the segment terminator byte 105.
    if len(body) < 106 or not body.startswith(b"ISA"):
        return None
    element, terminator = body[3:4], body[105:106]
    segments = [s.strip().split(element) for s in body.split(terminator)]
    # As the adapter reads it: L11 qualified 2I is the tracking number, else B10's carrier reference.
    for parts in segments:
        if parts[0] == b"L11" and len(parts) > 2 and parts[2] == b"2I" and parts[1]:
            return parts[1]
    for parts in segments:
        if parts[0] == b"B10" and len(parts) > 1 and parts[1]:
            return parts[1]
    return None


def key_for(door: Door, body: bytes) -> bytes:
    """``message_key``, or the fallback key when there is none (or it is not printable text)."""
    key = message_key(door, body)
    if key is None:
        return fallback_key(door)
    try:
        text = key.decode()
    except UnicodeDecodeError:
        return fallback_key(door)
    return key if text and len(text) <= 256 and text.isprintable() else fallback_key(door)
