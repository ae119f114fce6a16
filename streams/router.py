"""Scan router: raw carrier payloads -> canonical scans matched to their order.

Reads ``carrier-scans.raw`` (external formats only), ``carrier-scans.rekeyed`` (scans this
router moved to their own tracking number) and ``tracking-links``, all keyed by tracking
number, so co-partitioned. Keeps, per tracking number, the links to orders and the scans
that came before their link. Each agent step is a set of record batches grouped by partition
(``streams.bulk``); a record that cannot be read or routed goes to the DLQ alone and the step goes on.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import faust

from models import topics
from models.carriers import canonical, history, parse_payload
from models.carriers.history import Known
from models.codec import encode, encode_scan
from models.deadlines import epoch_seconds
from models.effects import Alert, HistoryRecord, TrackingLink
from models.errors import InvalidPayload
from models.events import CarrierScan, sent_key
from models.formats import STATE_FORMAT, keeping_unknown_values
from models.routing import (
    Sent,
    TrackingEntry,
    UnmatchedCheck,
    expire_held,
    split_by_tracking_number,
    unmatched_due,
    unmatched_effects,
    update_entry,
)
from models.thresholds import Thresholds
from streams.app import Channels, store_options
from streams.batch_io import Outbox, deliver, store_steps, whole_batch_or_exit
from streams.bulk import PartitionStep, partition_steps
from streams.clock import PartitionDeadlines, due_at_watermark
from streams.dead_letters import header, send_to_dlq
from streams.decoded import DecodedValues
from streams.order_store import stored_deadline
from trackline.metrics import STAGE

Item = TrackingLink | CarrierScan | UnmatchedCheck
CHECK_HEADER = "trackline-unmatched-check"  # on the re-keyed topic: the watermark the check runs at
log = logging.getLogger("trackline.router")


def register(app: faust.App, ch: Channels, rules: Thresholds, tick_interval: float) -> None:
    partitions = app.conf.topic_partitions
    bound = timedelta(hours=rules.unmatched_scan_hours)
    tracking = app.Table("tracking", default=None, key_type=bytes, value_type=bytes, partitions=partitions,
                         options=store_options())
    # When each tracking number's oldest held scan gives up waiting for its order.
    held_deadlines = PartitionDeadlines()
    forwarded = ForwardedScans()
    routed_entries = RecentScans(limit=200_000)  # (history entry fingerprint, order id): models.carriers.history
    entries = DecodedEntries(tracking)

    @app.on_partitions_revoked.connect
    async def forget_held_deadlines(*args: Any, **kwargs: Any) -> None:
        held_deadlines.clear()
        forwarded.clear()
        routed_entries.clear()
        entries.clear()  # another worker may change them now

    @app.timer(interval=tick_interval, name="unmatched-scan-checks")
    async def check_held_scans() -> None:
        found = await due_at_watermark(app, held_deadlines, tracking, topics.CARRIER_SCANS_RAW, "held-scan")
        if found is None:
            return
        now, due = found
        if due:
            header_value = now.isoformat().encode()
            await deliver(app, "unmatched scan checks", lambda outbox: outbox.records_by_key(
                topics.CARRIER_SCANS_REKEYED, partitions, [(number, b"") for _, number, _ in due],
                headers=[(CHECK_HEADER, header_value)]))
            held_deadlines.acknowledge(due)

    async def route(outbox: Outbox, records: list[Any], changed: dict[bytes, bytes | None],
                    updated: dict[bytes, TrackingEntry], sent: list[tuple[str, str]], prints: dict[str, bytes]
                    ) -> None:
        """Route one partition's records (the partition's database is current), one record at a
        time, so a history entry routed by an earlier webhook of this step is left out of the
        later ones before it is parsed again."""
        parsing = routing = 0.0
        # A link in this batch may send the number's scans to another order: parse all.
        relinked = {record.key for record in records if record.topic == topics.TRACKING_LINKS}
        running: dict[bytes, TrackingEntry] = {}  # each number's entry as this step left it
        routed_here: set[tuple[bytes, str]] = set()  # (fingerprint, order id) routed by this step
        matched: list[CarrierScan] = []
        given_up: list[Any] = []
        for record in records:
            started = time.thread_time()
            key = record.key or b""
            record_prints: dict[str, bytes] = {}
            try:  # a stored entry that does not decode sends this record to the DLQ, not the step
                entry = running[key] if key in running else entries.get(key)
                known = None if key in relinked else _known_entries(entry, routed_entries, routed_here)
                incoming = await _decode(outbox, record, partitions, bound, known, record_prints)
            except Exception as error:  # InvalidPayload, or a bug: this record alone
                await send_to_dlq(outbox, record, error)
                parsing += time.thread_time() - started
                continue
            decoded = time.thread_time()
            parsing += decoded - started
            prints.update(record_prints)
            if incoming:
                try:  # a record that breaks the rules leaves the entry as it was before it
                    entry, released, expired, entry_changed = _route_items(entry, incoming, forwarded.sent)
                except Exception as error:
                    await send_to_dlq(outbox, record, error)
                else:
                    running[key] = entry
                    matched.extend(released)
                    given_up.extend(expired)
                    if entry_changed:  # an entry left with nothing is removed (a tombstone)
                        changed[key] = encode_entry(entry, bound) if entry.links or entry.held else None
                        updated[key] = entry
                    for scan in released if record_prints else ():  # these entries went to their order
                        if (fingerprint := record_prints.get(sent_key(scan))) is not None:
                            routed_here.add((fingerprint, scan.order_id))
            routing += time.thread_time() - decoded
        started = time.thread_time()
        # A webhook that repeats the package's history (EasyPost, AfterShip, Shippo) repeats
        # scans this router already sent to their order (left out above, before a copy);
        # one batch can repeat a scan too.
        # A repeat is the same scan with the same estimate as the one kept before it.
        last: dict[tuple[str, str], str] = {}
        fresh: list[CarrierScan] = []
        for scan in matched:
            if last.get((scan.event_id, scan.order_id)) != (as_news := sent_key(scan)):
                last[(scan.event_id, scan.order_id)] = as_news
                fresh.append(scan)
        sent.extend((sent_key(scan), scan.order_id) for scan in fresh)
        scans = [(scan.order_id, encode_scan(scan)) for scan in fresh]
        STAGE["parse"].inc(parsing)
        STAGE["route"].inc(routing + time.thread_time() - started)
        await outbox.envelopes(topics.ORDER_EVENTS, partitions, scans)
        await _publish_unmatched(outbox, given_up, partitions)

    async def route_steps(steps: list[PartitionStep]) -> None:
        """One agent step, every partition in it together: two waits for the broker's acks
        per step (scans, then entries), not per partition."""
        generation = entries.generation
        changed: dict[int, dict[bytes, bytes | None]] = {step.partition: {} for step in steps}
        updated: dict[bytes, TrackingEntry] = {}
        sent: list[tuple[str, str]] = []
        prints: dict[str, bytes] = {}  # sent_key -> fingerprint of the history entry it came from

        async def scans(outbox: Outbox) -> None:
            updated.clear()  # a retry routes the step again from the stored entries
            sent.clear()
            prints.clear()
            for step in steps:
                changed[step.partition].clear()
                with step.current():
                    await route(outbox, step.records, changed[step.partition], updated, sent, prints)

        # Matched scans reach the broker before the entries that released them are stored.
        await deliver(app, "scan router: scans", scans)
        forwarded.add(sent)  # only once the broker has them: a retried batch sends them again
        routed_entries.add([(prints[scan_id], order_id) for scan_id, order_id in sent if scan_id in prints])

        await store_steps(app, "scan router: entries", tracking, steps, changed)
        entries.keep(updated, generation)
        for step in steps:
            for key, value in changed[step.partition].items():
                held_deadlines.schedule(step.partition, key.decode(errors="replace"), _due(value))
            step.processed()

    @app.agent(ch.router_input, name="scan-router")
    async def route_scans(batches: faust.StreamT) -> None:
        async for steps in partition_steps(batches):
            async with whole_batch_or_exit("scan router"):
                await route_steps(steps)


class DecodedEntries(DecodedValues[bytes, TrackingEntry]):
    """The tracking entries as this worker last stored them, decoded (``streams.decoded``).
    Entries are never changed in place: ``models.routing`` returns a new one."""

    LIMIT = 20_000  # ~1.9 KB a decoded entry: ~40 MB, the hot numbers (like the orders' cache)

    def __init__(self, table: Any) -> None:
        super().__init__(self.LIMIT)
        self.table = table

    def get(self, key: bytes) -> TrackingEntry:
        entry = self.values.get(key)
        if entry is None:
            entry = decode_entry(self.table.get(key))
            self.keep({key: entry}, self.generation)
        return entry


class RecentScans:
    """The (scan id, order id) pairs this worker sent to the orders lately, to drop repeats before
    they cost an order hop (and the (history entry fingerprint, order id) pairs, to leave them
    out before they cost a parse). Memory only and bounded: a repeat it has forgotten (after a
    restart, a rebalance or many newer scans) reaches the order, whose state drops it as before."""

    LIMIT = 500_000  # ~250 bytes a pair: ~125 MB when full

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self.seen: dict[tuple[Any, str], Any] = {}  # insertion-ordered: the oldest go first

    def __contains__(self, key: tuple[Any, str]) -> bool:
        return key in self.seen

    def sent(self, scan_id: str, order_id: str) -> bool:
        return (scan_id, order_id) in self.seen

    def add(self, keys: list[tuple[Any, str]]) -> None:
        self._store(dict.fromkeys(keys))

    def _store(self, pairs: dict[tuple[Any, str], Any]) -> None:
        self.seen.update(pairs)
        if len(self.seen) > self.limit:
            for old in list(itertools.islice(self.seen, len(self.seen) - self.limit // 2)):
                del self.seen[old]

    def clear(self) -> None:
        self.seen.clear()


class ForwardedScans(RecentScans):
    """The scans sent to each order lately, by ``sent_key`` (scan id and carrier estimate): only
    the last estimate sent with each scan counts, so a carrier going back to an earlier date
    on a known scan is news again."""

    def sent(self, key: str, order_id: str) -> bool:
        return self.seen.get((key.split("|", 1)[0], order_id)) == key

    def add(self, keys: list[tuple[Any, str]]) -> None:
        self._store({(key.split("|", 1)[0], order_id): key for key, order_id in keys})


def encode_entry(entry: TrackingEntry, bound: timedelta) -> bytes:
    """``b"<unmatched deadline, epoch seconds or 0>|<format>|" + JSON``: the index is rebuilt from the prefix."""
    due = unmatched_due(entry, bound)
    return b"%d|%d|" % (epoch_seconds(due) if due else 0, STATE_FORMAT) + entry.model_dump_json().encode()


def decode_entry(stored: bytes | None) -> TrackingEntry:
    """Any format: bare JSON (the first), with the deadline prefix, with the format field too."""
    if not stored:
        return TrackingEntry()
    if not stored.startswith(b"{"):  # written with the deadline prefix
        stored = stored[stored.index(b"|") + 1:]
    if not stored.startswith(b"{"):  # and the format field
        stored = stored[stored.index(b"|") + 1:]
    with keeping_unknown_values():  # held scans written by a newer worker
        return TrackingEntry.model_validate_json(stored)


def _due(stored: bytes | None) -> datetime | None:
    due = stored_deadline(stored) if stored else None
    return datetime.fromtimestamp(due, timezone.utc) if due else None


async def _publish_unmatched(outbox: Outbox, expired: list[tuple[CarrierScan, UnmatchedCheck]],
                             partitions: int) -> None:
    by_check: dict[UnmatchedCheck, list[CarrierScan]] = defaultdict(list)
    for scan, check in expired:  # one check time per timer round: one alert per feed and round
        by_check[check].append(scan)
    effects = [effect for check, scans in by_check.items() for effect in unmatched_effects(scans, check)]
    await outbox.envelopes(topics.HISTORY, partitions, ((e.order_id, encode(e))
                                                        for e in effects if isinstance(e, HistoryRecord)))
    await outbox.keyed(topics.ALERTS, partitions, ((e.order_id, e.model_dump_json().encode())
                                                   for e in effects if isinstance(e, Alert)))


def _route_items(entry: TrackingEntry, items: list[Item], sent: Sent
                 ) -> tuple[TrackingEntry, list[CarrierScan], list[Any], bool]:
    """Apply one record's items to its tracking number's entry. Returns the entry, the scans
    matched to orders, the (scan, check) pairs that gave up waiting, and whether the entry
    changed. Entries are never changed in place, so a record that raises leaves none half-applied."""
    released: list[CarrierScan] = []
    expired: list[tuple[CarrierScan, UnmatchedCheck]] = []
    changed = False
    for item in items:
        if isinstance(item, UnmatchedCheck):
            entry, gone = expire_held(entry, item)
            expired.extend((scan, item) for scan in gone)
            changed = changed or bool(gone)
            continue
        entry, matched, item_changed = update_entry(entry, item, sent)
        changed = changed or item_changed
        released.extend(matched)
    return entry, released, expired, changed


def _known_entries(entry: TrackingEntry, routed: RecentScans, routed_here: set[tuple[bytes, str]]) -> Known | None:
    """Which history entries of this tracking number went to its order already (in an earlier
    step, or by an earlier record of this one); None while the number is not linked to exactly
    one order (held scans, or several carriers' numbers)."""
    if len(entry.links) != 1:
        return None
    order_id = next(iter(entry.links.values())).order_id
    seen = routed.seen  # read directly: a method call per history entry costs more than the lookup
    return lambda fingerprint: (pair := (fingerprint, order_id)) in seen or pair in routed_here


async def _decode(outbox: Outbox, record: Any, partitions: int, bound: timedelta, known: Known | None = None,
                  prints: dict[str, bytes] | None = None) -> list[Item]:
    """The record's items. ``prints`` gets each kept history entry's fingerprint by its scan's
    ``sent_key``, when every entry kept is a scan of the key's number."""
    if record.topic == topics.TRACKING_LINKS:
        return [TrackingLink.model_validate_json(record.value)]
    ingested_at = datetime.fromtimestamp(record.timestamp / 1000, tz=timezone.utc)
    if record.topic == topics.CARRIER_SCANS_REKEYED:
        check = header(record, CHECK_HEADER)
        if check is not None:  # the router's own timer: held scans past the bound give up
            return [UnmatchedCheck(datetime.fromisoformat(check.decode()), bound)]
        return list(canonical.parse(record.value or b"", ingested_at))
    source = header(record, topics.SOURCE_HEADER)
    if not source:
        raise InvalidPayload("missing_source", f"header {topics.SOURCE_HEADER!r} names no source")
    named = source.decode(errors="replace")
    raw = record.value or b""
    new = history.leave_out(named.strip().lower(), raw, known) if known is not None else None
    try:
        scans, rejected = parse_payload(named, new.document if new else raw, ingested_at)
    except InvalidPayload:
        if new is None or not new.left_out:
            raise
        # The error as the carrier's own payload gives it (which entry, by its index there).
        scans, rejected = parse_payload(named, raw, ingested_at)
        new = None
    for error, part in rejected:  # one shipment of an interchange: the others go on
        await send_to_dlq(outbox, record, error, value=part)
    own = await _rekey_foreign(outbox, record.key or b"", scans, partitions)
    if new is not None and prints is not None and len(own) == len(scans) == len(new.fingerprints):
        prints.update(zip((sent_key(scan) for scan in scans), new.fingerprints, strict=True))
    return own


async def _rekey_foreign(outbox: Outbox, key: bytes, scans: list[CarrierScan], partitions: int) -> list[Item]:
    """Keep the scans of this message's tracking number; send the others to their own key."""
    own, foreign = split_by_tracking_number(key.decode(errors="replace"), scans)
    if not foreign:  # the usual case: no send to await
        return list(own)
    await outbox.keyed(topics.CARRIER_SCANS_REKEYED, partitions,
                       ((number, canonical.dump(group)) for number, group in foreign.items()))
    return list(own)
