"""How an order's state is stored in the ``orders`` table.

The value is ``b"<next deadline, epoch seconds or 0>|<format>|" + state JSON``: rebuilding
the deadline index after a rebalance reads the first field and never decodes the state.
Format 1, from before versions, has no format field and reads as it was (``models.formats``).
"""

from __future__ import annotations

from models.deadlines import epoch_seconds
from models.formats import STATE_FORMAT, keeping_unknown_values
from models.state import OrderState

_FORMAT = b"%d|" % STATE_FORMAT


def encode(state: OrderState) -> bytes:
    due = epoch_seconds(state.next_deadline) if state.next_deadline else 0
    return b"%d|" % due + _FORMAT + state.model_dump_json().encode()


def decode(stored: bytes) -> OrderState:
    body = stored[stored.index(b"|") + 1:]
    if body[:1] != b"{":  # a format field (format 2 on)
        body = body[body.index(b"|") + 1:]
    with keeping_unknown_values():  # written by a newer worker: keep what this one does not know
        return OrderState.model_validate_json(body)


def stored_format(stored: bytes) -> int:
    body = stored[stored.index(b"|") + 1:]
    return 1 if body[:1] == b"{" else int(body[:body.index(b"|")])


def stored_deadline(stored: bytes) -> int | None:
    """The prefix alone; None for no deadline and for Faust's own bookkeeping keys."""
    head, sep, _ = stored[:24].partition(b"|")
    return int(head) or None if sep and head.isdigit() else None
