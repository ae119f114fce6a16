"""Matching carrier scans to orders, and where keyed records land.

A scan names a carrier and a tracking number; only the fulfillment center's
``package_shipped`` says which order and package that is. The router keeps those links
and holds scans that arrive before their link, releasing them when it comes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from aiokafka.partitioner import murmur2
from pydantic import BaseModel, Field

from models.effects import Alert, AlertKind, Effect, HistoryRecord, TrackingLink, stable_id
from models.events import CarrierScan, sent_key, tracking_key

HELD_SCANS_KEPT = 200  # per tracking number; a carrier resends its whole history anyway
# "This scan (``sent_key``: its id and estimate) was sent to this order already" (the router's
# memory of what the broker acked).
Sent = Callable[[str, str], bool]


@lru_cache(maxsize=200_000)
def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner picks for ``key``."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class TrackingEntry(BaseModel):
    """Everything the router knows about one tracking number (over all carriers)."""

    links: dict[str, TrackingLink] = Field(default_factory=dict)  # by tracking_key
    held: list[CarrierScan] = Field(default_factory=list)


def route_scan(entry: TrackingEntry, scan: CarrierScan, sent: Sent | None = None
               ) -> tuple[TrackingEntry, list[CarrierScan]]:
    """Return the scan matched to its order, or hold it until its link is announced.

    ``sent(sent_key(scan), order_id)`` says the scan already went to that order: a repeat from a
    webhook that resends the whole history is left out (the order would drop it too), unless
    it carries a new carrier estimate.
    The entry given is never changed: a changed one is a new entry (the shell caches entries).
    """
    link = entry.links.get(tracking_key(scan.carrier, scan.tracking_number))
    if link is None:
        held = [s for s in entry.held if s.event_id != scan.event_id]
        return entry.model_copy(update={"held": [*held, scan][-HELD_SCANS_KEPT:]}), []
    if sent is not None and sent(sent_key(scan), link.order_id):
        return entry, []
    return entry, [scan.model_copy(update={"order_id": link.order_id, "package_id": link.package_id})]


def link_tracking(entry: TrackingEntry, link: TrackingLink) -> tuple[TrackingEntry, list[CarrierScan]]:
    """Record a link and release the held scans it matches, oldest first (a new entry)."""
    key = tracking_key(link.carrier, link.tracking_number)
    if link.removed:  # its order is gone: the entry keeps only what other orders need
        if (known := entry.links.get(key)) is not None and known.order_id == link.order_id:
            return entry.model_copy(update={"links": {k: v for k, v in entry.links.items() if k != key}}), []
        return entry, []
    released = [s for s in entry.held if tracking_key(s.carrier, s.tracking_number) == key]
    entry = entry.model_copy(update={
        "links": {**entry.links, key: link},
        "held": [s for s in entry.held if tracking_key(s.carrier, s.tracking_number) != key]})
    matched = [s.model_copy(update={"order_id": link.order_id, "package_id": link.package_id})
               for s in sorted(released, key=lambda s: s.occurred_at)]
    return entry, matched


def update_entry(entry: TrackingEntry, item: TrackingLink | CarrierScan, sent: Sent | None = None
                 ) -> tuple[TrackingEntry, list[CarrierScan], bool]:
    """Apply a link or a scan: the entry, the scans now matched, and whether the entry changed."""
    if isinstance(item, TrackingLink):
        entry, released = link_tracking(entry, item)
        return entry, released, True
    routed, matched = route_scan(entry, item, sent)
    return routed, matched, routed is not entry  # a scan changes the entry only when it is held


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


@dataclass(frozen=True)
class UnmatchedCheck:
    """The router's timer: held scans that found no order by ``now`` (the ingest-time
    watermark) give up waiting."""

    now: datetime
    bound: timedelta


def unmatched_due(entry: TrackingEntry, bound: timedelta) -> datetime | None:
    """When the oldest held scan has waited ``bound`` for its order (by ingest time)."""
    if not entry.held:
        return None
    return min(s.ingested_at for s in entry.held) + bound


def expire_held(entry: TrackingEntry, check: UnmatchedCheck) -> tuple[TrackingEntry, list[CarrierScan]]:
    """Take the scans that waited ``check.bound`` or longer out of the held list."""
    expired = [s for s in entry.held if s.ingested_at + check.bound <= check.now]
    if expired:
        entry = entry.model_copy(update={"held": [s for s in entry.held if s.ingested_at + check.bound > check.now]})
    return entry, expired


def unmatched_effects(expired: list[CarrierScan], check: UnmatchedCheck) -> list[Effect]:
    """A history row per scan that found no order, and an ops alert per source and carrier, so a
    carrier named differently by the fulfillment center and the feed shows on a dashboard."""
    hours = check.bound.total_seconds() / 3600
    effects: list[Effect] = []
    feeds: dict[tuple[str, str], list[CarrierScan]] = {}
    for scan in expired:
        feeds.setdefault((scan.source, scan.carrier), []).append(scan)
        effects.append(HistoryRecord(
            record_id=stable_id(scan.event_id, "unmatched"), record_type="event", order_id="",
            event_id=scan.event_id, source=scan.source, carrier=scan.carrier, tracking_number=scan.tracking_number,
            status=scan.status.value, raw_code=scan.raw_code,
            detail=f"unmatched: no order announced {scan.carrier} {scan.tracking_number} within {hours:g} h",
            occurred_at=scan.occurred_at, ingested_at=scan.ingested_at))
    for (source, carrier), scans in sorted(feeds.items()):
        alert_id = stable_id("unmatched_scans", source, carrier, check.now.date().isoformat())
        detail = f"{len(scans)} {source} scans of carrier {carrier!r} found no order (e.g. {scans[0].tracking_number})"
        due = min(s.ingested_at for s in scans) + check.bound
        effects.append(Alert(alert_id=alert_id, alert_kind=AlertKind.unmatched_scans, order_id="", state="open",
                             due_at=due, at=check.now, detail=detail, carrier=carrier))
        effects.append(HistoryRecord(
            record_id=stable_id(alert_id, "open", *sorted(s.event_id for s in scans)), record_type="alert",
            order_id="", event_id=alert_id, source=source, carrier=carrier, status=AlertKind.unmatched_scans.value,
            previous_status="open", detail=detail, occurred_at=due, ingested_at=check.now,
            attributes={"due_at": due.isoformat(), "opened_at": check.now.isoformat(), "scans": str(len(scans))}))
    return effects
