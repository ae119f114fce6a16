"""Carrier adapters: raw bytes from a carrier or aggregator -> canonical ``CarrierScan``s.

Each format is one module with a pure ``parse(raw, ingested_at)``. The source is named by
the ``trackline-source`` header of the raw message; ``parse_carrier_payload`` picks the
adapter and turns every failure into ``InvalidPayload`` with a reason fit for the DLQ.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from models.carriers import aftership, canonical, easypost, generic, shippo, x12_214
from models.errors import InvalidPayload
from models.events import CarrierScan

ADAPTERS: dict[str, Callable[[bytes, datetime], list[CarrierScan]]] = {
    "easypost": easypost.parse,
    "aftership": aftership.parse,
    "shippo": shippo.parse,
    "generic": generic.parse,
    "x12-214": x12_214.parse,
    canonical.SOURCE: canonical.parse,
}


def parse_carrier_payload(source: str, raw: bytes, ingested_at: datetime) -> list[CarrierScan]:
    adapter = ADAPTERS.get(source.strip().lower())
    if adapter is None:
        raise InvalidPayload(
            "unknown_source", f"no adapter for source {source!r}; known: {sorted(ADAPTERS)}"
        )
    return adapter(raw, ingested_at)
