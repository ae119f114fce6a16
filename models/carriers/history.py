"""Webhooks that resend the whole history: leave out the entries already routed, before parsing.

EasyPost ``tracker.updated``, AfterShip and Shippo send a package's every scan so far in each
webhook: with ten scans a package, nine of ten entries parsed are repeats the order drops.
Each entry has a fingerprint (source, carrier, tracking number and the entry's JSON as
sent); the router remembers the fingerprints of entries it routed to an order, and
``leave_out`` gives the decoded payload without them, so the adapter parses only what is new
and the bytes are read once.

Pure and conservative: anything not in the documented shape is parsed as it came, an entry
is left out only when its fingerprint says so, and the last entry is always kept, so the
envelope (tracking number, carrier, estimate) is still checked and a bad one is still a
dead letter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

# source -> (the object holding the history, its list of entries, its carrier field)
HISTORIES = {
    "easypost": ("result", "tracking_details", "carrier"),
    "aftership": ("msg", "checkpoints", "slug"),
    "shippo": ("data", "tracking_history", "carrier"),
}

Known = Callable[[bytes], bool]  # a fingerprint -> the entry was routed to its order already


class NewEntries(NamedTuple):
    document: dict[str, Any]  # the payload as read, with the known entries left out: for its adapter
    fingerprints: list[bytes]  # of the entries kept, in their order
    left_out: int


def fingerprint(source: str, carrier: Any, number: Any, entry: Any) -> bytes:
    return hashlib.blake2b(orjson.dumps([source, carrier, number, entry]), digest_size=16).digest()


def leave_out(source: str, raw: bytes, known: Known) -> NewEntries | None:
    """The payload, decoded, without the history entries ``known`` names; None to parse the
    bytes as they are (not a history format, or not its documented shape)."""
    path = HISTORIES.get(source)
    if path is None:
        return None
    holder_field, entries_field, carrier_field = path
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    holder = document.get(holder_field) if isinstance(document, dict) else None
    entries = holder.get(entries_field) if isinstance(holder, dict) else None
    if not isinstance(entries, list) or not entries:
        return None
    assert isinstance(holder, dict)  # for the type checker: entries came from it
    carrier, number = holder.get(carrier_field), holder.get("tracking_number" if source != "easypost"
                                                            else "tracking_code")
    prints = [fingerprint(source, carrier, number, entry) for entry in entries]
    keep = [i for i, p in enumerate(prints) if not known(p)] or [len(entries) - 1]
    if len(keep) == len(entries):
        return NewEntries(document, prints, 0)
    holder[entries_field] = [entries[i] for i in keep]
    return NewEntries(document, [prints[i] for i in keep], len(entries) - len(keep))
