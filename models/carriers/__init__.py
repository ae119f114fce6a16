"""Carrier adapters: raw bytes from a carrier or aggregator -> canonical ``CarrierScan``s.

Each format is one module with a pure ``parse(raw, ingested_at)``. The source is named by
the ``trackline-source`` header of the raw message; ``parse_carrier_payload`` picks the
adapter. Adapters raise nothing but ``InvalidPayload`` (with a reason fit for the DLQ),
whatever the bytes: hypothesis checks that in tests/unit/test_payload_properties.py.

trackline's own canonical scans (``canonical``) are not an external format: they travel
only on the internal re-keyed topic, so nobody who can write to the raw topic can forge one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from models.carriers import aftership, easypost, generic, shippo, x12_214
from models.carriers.json_fields import Payload
from models.errors import InvalidPayload
from models.events import CarrierScan

ADAPTERS: dict[str, Callable[[Any, datetime], list[CarrierScan]]] = {
    "easypost": easypost.parse,
    "aftership": aftership.parse,
    "shippo": shippo.parse,
    "generic": generic.parse,
    "x12-214": x12_214.parse,
}


class Parsed(NamedTuple):
    """What a payload gave: its scans, and the parts that could not be read with their own bytes
    (one shipment of an X12 interchange must not cost the others)."""

    scans: list[CarrierScan]
    rejected: list[tuple[InvalidPayload, bytes]]


def parse_carrier_payload(source: str, raw: Payload, ingested_at: datetime) -> list[CarrierScan]:
    """``raw``: the bytes as sent, or for the JSON formats the object already read from them."""
    adapter = ADAPTERS.get(source.strip().lower())
    if adapter is None:
        raise InvalidPayload(
            "unknown_source", f"no adapter for source {source!r}; known: {sorted(ADAPTERS)}"
        )
    return adapter(raw, ingested_at)


def parse_payload(source: str, raw: Payload, ingested_at: datetime) -> Parsed:
    """``parse_carrier_payload`` that keeps the good parts of a payload when a part is bad."""
    if source.strip().lower() == x12_214.SOURCE and isinstance(raw, bytes):
        return Parsed(*x12_214.parse_parts(raw, ingested_at))
    return Parsed(parse_carrier_payload(source, raw, ingested_at), [])
