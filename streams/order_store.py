"""How an order's state is stored in the ``orders`` table.

The value is ``b"<next deadline, epoch seconds or 0>|" + state JSON``: rebuilding the
deadline index after a rebalance reads that prefix and never decodes the state.
"""

from __future__ import annotations

from models.deadlines import epoch_seconds
from models.state import OrderState


def encode(state: OrderState) -> bytes:
    due = epoch_seconds(state.next_deadline) if state.next_deadline else 0
    return b"%d|" % due + state.model_dump_json().encode()


def decode(stored: bytes) -> OrderState:
    return OrderState.model_validate_json(stored[stored.index(b"|") + 1:])


def stored_deadline(stored: bytes) -> int | None:
    """The prefix alone; None for no deadline and for Faust's own bookkeeping keys."""
    head, sep, _ = stored[:24].partition(b"|")
    return int(head) or None if sep and head.isdigit() else None
