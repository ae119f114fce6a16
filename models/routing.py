"""Matching carrier scans to orders, and where keyed records land.

A scan names a carrier and a tracking number; only the fulfillment center's
``package_shipped`` says which order and package that is. The router keeps those links
and holds scans that arrive before their link, releasing them when it comes.
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2
from pydantic import BaseModel, Field

from models.effects import TrackingLink
from models.events import CarrierScan, tracking_key

HELD_SCANS_KEPT = 200  # per tracking number; a carrier resends its whole history anyway


@lru_cache(maxsize=200_000)
def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner picks for ``key``."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class TrackingEntry(BaseModel):
    """Everything the router knows about one tracking number (over all carriers)."""

    links: dict[str, TrackingLink] = Field(default_factory=dict)  # by tracking_key
    held: list[CarrierScan] = Field(default_factory=list)


def route_scan(entry: TrackingEntry, scan: CarrierScan) -> tuple[TrackingEntry, list[CarrierScan]]:
    """Return the scan matched to its order, or hold it until its link is announced."""
    link = entry.links.get(tracking_key(scan.carrier, scan.tracking_number))
    if link is None:
        held = [s for s in entry.held if s.event_id != scan.event_id]
        entry.held = [*held, scan][-HELD_SCANS_KEPT:]
        return entry, []
    return entry, [scan.model_copy(update={"order_id": link.order_id, "package_id": link.package_id})]


def link_tracking(entry: TrackingEntry, link: TrackingLink) -> tuple[TrackingEntry, list[CarrierScan]]:
    """Record a link and release the held scans it matches, oldest first."""
    key = tracking_key(link.carrier, link.tracking_number)
    entry.links[key] = link
    released = [s for s in entry.held if tracking_key(s.carrier, s.tracking_number) == key]
    entry.held = [s for s in entry.held if tracking_key(s.carrier, s.tracking_number) != key]
    matched = [s.model_copy(update={"order_id": link.order_id, "package_id": link.package_id})
               for s in sorted(released, key=lambda s: s.occurred_at)]
    return entry, matched


def update_entry(entry: TrackingEntry, item: TrackingLink | CarrierScan
                 ) -> tuple[TrackingEntry, list[CarrierScan], bool]:
    """Apply a link or a scan: the entry, the scans now matched, and whether the entry changed."""
    if isinstance(item, TrackingLink):
        entry, released = link_tracking(entry, item)
        return entry, released, True
    entry, matched = route_scan(entry, item)
    return entry, matched, not matched  # a scan changes the entry only when it is held


def split_by_tracking_number(key: str, scans: list[CarrierScan]
                             ) -> tuple[list[CarrierScan], dict[str, list[CarrierScan]]]:
    """The scans of the message key's tracking number, and the others by their own number.

    A message reports one tracking number under its key, except an interchange of several
    shipments or a producer that keyed it otherwise: those scans must be matched where
    their own tracking number lives.
    """
    own: list[CarrierScan] = []
    foreign: dict[str, list[CarrierScan]] = {}
    for scan in scans:
        if scan.tracking_number == key:
            own.append(scan)
        else:
            foreign.setdefault(scan.tracking_number, []).append(scan)
    return own, foreign
