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
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from models.carriers import aftership, easypost, shippo

# source -> (the object holding the history, its list of entries, its carrier field)
HISTORIES = {
    "easypost": ("result", "tracking_details", "carrier"),
    "aftership": ("msg", "checkpoints", "slug"),
    "shippo": ("data", "tracking_history", "carrier"),
}
# source -> when an entry was scanned, read as its adapter reads it: with every entry known,
# the newest one is kept
ENTRY_TIMES: dict[str, Callable[[dict[str, Any]], tuple[datetime, Any]]] = {
    "easypost": easypost.entry_time, "aftership": aftership.entry_time, "shippo": shippo.entry_time}

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
    try:
        prints = [fingerprint(source, carrier, number, entry) for entry in entries]
    except TypeError:  # orjson's JSONEncodeError: nested deeper than it writes; the adapter judges it
        return None
    keep = [i for i, p in enumerate(prints) if not known(p)] or [newest(entries, ENTRY_TIMES[source])]
    if len(keep) == len(entries):
        return NewEntries(document, prints, 0)
    holder[entries_field] = [entries[i] for i in keep]
    return NewEntries(document, [prints[i] for i in keep], len(entries) - len(keep))


def newest(entries: list[Any], entry_time: Callable[[dict[str, Any]], tuple[datetime, Any]]) -> int:
    """The index of the entry scanned last; the last one when any time does not read.

    A webhook whose every entry is known still carries the tracker's estimate: the order
    takes it only with the package's newest scan, and not every feed lists its history
    oldest first. Times are read by the adapter's own rules (an offset-less time in the
    zone of the scan's place, epoch seconds), so the entry kept is the one the order sees
    as newest."""
    times = []
    for entry in entries:
        if not isinstance(entry, dict):
            return len(entries) - 1
        try:
            times.append(entry_time(entry)[0])
        except Exception:  # noqa: BLE001 - InvalidPayload or a surprise: keep the last, the adapter judges
            return len(entries) - 1
    latest = max(times)
    return max(i for i, moment in enumerate(times) if moment == latest)  # ties: the later-listed
