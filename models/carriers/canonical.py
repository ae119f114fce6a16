"""trackline's own canonical scans, re-keyed by tracking number (source ``trackline-canonical``).

A payload can report several shipments (an X12 214 interchange) or arrive under a key that
is not its tracking number. The router keeps what belongs to the message's key and sends
the rest back to the raw topic in this form, keyed by tracking number, so each scan is
matched in the partition that holds its tracking number.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import TypeAdapter, ValidationError

from models.errors import InvalidPayload
from models.events import CarrierScan

SOURCE = "trackline-canonical"
_scans = TypeAdapter(list[CarrierScan])


def dump(scans: list[CarrierScan]) -> bytes:
    return _scans.dump_json(scans)


def parse(raw: bytes, ingested_at: datetime) -> list[CarrierScan]:
    try:
        return _scans.validate_json(raw)
    except ValidationError as exc:
        raise InvalidPayload("invalid_internal_event", str(exc)[:500]) from None
