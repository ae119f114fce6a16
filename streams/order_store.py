"""How an order's state is stored in the ``orders`` table.

The value is ``b"<next deadline, epoch seconds or 0>|<format>|" + state JSON``, or for an
order removed by retention ``b"<marker's end>|x|" + JSON`` (``Marker``): rebuilding
the deadline index after a rebalance reads the first field and never decodes the state.
Format 1, from before versions, has no format field and reads as it was (``models.formats``).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import orjson

from models.codec import decode_state, encode_state
from models.deadlines import epoch_seconds
from models.formats import STATE_FORMAT
from models.state import OrderState

_FORMAT = b"%d|" % STATE_FORMAT


def encode(state: OrderState) -> bytes:
    due = epoch_seconds(state.next_deadline) if state.next_deadline else 0
    return b"%d|" % due + _FORMAT + encode_state(state)


class UnreadableState(ValueError):
    """A stored value that does not decode: corrupted on disk or in the changelog, or written
    by a bug. The order's events are dead-lettered (``unreadable_order_state``), never applied
    to a state started afresh, and the stored bytes stay as they are for whoever repairs them."""


def decode(stored: bytes) -> OrderState:
    try:
        body = stored[stored.index(b"|") + 1:]
        if body[:1] != b"{":  # a format field (format 2 on)
            body = body[body.index(b"|") + 1:]
        return decode_state(body)  # written by a newer worker: keeps what this one does not know
    except Exception as exc:  # the codec's own errors, or a value without its prefix
        raise UnreadableState(f"{type(exc).__name__}: {exc}"[:300]) from exc


class Marker(NamedTuple):
    """What is left of an order removed by retention: when, and the tracking numbers whose
    router entries go when the marker goes."""

    expired_at: datetime
    tracking: list[tuple[str, str]]  # (carrier, tracking number)


_MARKER = b"x|"


def encode_marker(state: OrderState, due: datetime) -> bytes:
    body = orjson.dumps({"expired_at": state.expired_at.isoformat() if state.expired_at else "",
                         "tracking": [[p.carrier, p.tracking_number] for p in state.packages.values()
                                      if p.tracking_number]})
    return b"%d|" % epoch_seconds(due) + _MARKER + body


def marker(stored: bytes) -> Marker | None:
    """The marker, if ``stored`` is one (not an order's state)."""
    body = stored[stored.find(b"|") + 1:]
    if not body.startswith(_MARKER):
        return None
    try:
        found = orjson.loads(body[len(_MARKER):])
        return Marker(datetime.fromisoformat(found["expired_at"]), [(c, n) for c, n in found["tracking"]])
    except Exception as exc:
        raise UnreadableState(f"marker: {type(exc).__name__}: {exc}"[:300]) from exc


def stored_format(stored: bytes) -> int:
    body = stored[stored.index(b"|") + 1:]
    return 1 if body[:1] == b"{" else int(body[:body.index(b"|")])


def stored_deadline(stored: bytes) -> int | None:
    """The prefix alone; None for no deadline and for Faust's own bookkeeping keys."""
    head, sep, _ = stored[:24].partition(b"|")
    return int(head) or None if sep and head.isdigit() else None
