"""Webhooks that resend the whole history: leave out the entries already routed, before parsing.

EasyPost ``tracker.updated``, AfterShip and Shippo send a package's every scan so far in each
webhook: with ten scans a package, nine of ten entries parsed are repeats the order drops.
Each entry has a fingerprint (source, carrier, tracking number and the entry's JSON as
sent); the router remembers the fingerprints of entries it routed to an order, and
``leave_out`` gives the decoded payload without them, so the adapter parses only what is new
and the bytes are read once.

Pure and conservative: anything not in the documented shape is parsed as it came, an entry
is left out only when its fingerprint says so, and one entry is always kept (the newest,
when every one is known), so the envelope (tracking number, carrier, estimate) is still
checked and a bad one is still a dead letter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

# source -> (the object holding the history, its list of entries, its carrier field)
HISTORIES = {
    "easypost": ("result", "tracking_details", "carrier"),
    "aftership": ("msg", "checkpoints", "slug"),
    "shippo": ("data", "tracking_history", "carrier"),
}
# source -> each entry's time field: with every entry known, the newest one is kept
ENTRY_TIMES = {"easypost": "datetime", "aftership": "checkpoint_time", "shippo": "status_date"}

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
    keep = [i for i, p in enumerate(prints) if not known(p)] or [newest(entries, ENTRY_TIMES[source])]
    if len(keep) == len(entries):
        return NewEntries(document, prints, 0)
    holder[entries_field] = [entries[i] for i in keep]
    return NewEntries(document, [prints[i] for i in keep], len(entries) - len(keep))


def newest(entries: list[Any], time_field: str) -> int:
    """The index of the entry scanned last; the last one when any time does not read.

    A webhook whose every entry is known still carries the tracker's estimate: the order
    takes it only with the package's newest scan, and not every feed lists its history
    oldest first. A time without an offset counts as UTC, as the adapters read it."""
    times = []
    for entry in entries:
        text = entry.get(time_field) if isinstance(entry, dict) else None
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00")) if isinstance(text, str) else None
        except ValueError:
            moment = None
        if moment is None:
            return len(entries) - 1
        times.append(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    latest = max(times)
    return max(i for i, moment in enumerate(times) if moment == latest)  # ties: the later-listed
