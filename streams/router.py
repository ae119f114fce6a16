"""Scan router: raw carrier payloads -> canonical scans matched to their order.

Reads ``carrier-scans.raw`` (external formats only), ``carrier-scans.rekeyed`` (scans this
router moved to their own tracking number) and ``tracking-links``, all keyed by tracking
number, so co-partitioned. Keeps, per tracking number, the links to orders and the scans
that came before their link. Each stream event is a batch of records of one partition;
a record that cannot be read or routed goes to the DLQ alone and the batch goes on.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

import faust

from models import topics
from models.carriers import canonical, parse_payload
from models.effects import TrackingLink
from models.errors import InvalidPayload
from models.events import CarrierScan
from models.routing import TrackingEntry, split_by_tracking_number, update_entry
from streams import watermark
from streams.app import Channels, store_options
from streams.batch_io import Outbox, deliver
from streams.dead_letters import header, send_to_dlq

Item = TrackingLink | CarrierScan


def register(app: faust.App, ch: Channels) -> None:
    partitions = app.conf.topic_partitions
    tracking = app.Table("tracking", default=None, key_type=bytes, value_type=bytes, partitions=partitions,
                         options=store_options())

    def stored_entry(key: bytes) -> TrackingEntry:
        stored = tracking.get(key)
        return TrackingEntry.model_validate_json(stored) if stored else TrackingEntry()

    @app.agent(ch.router_input, name="scan-router")
    async def route_scans(batches: faust.StreamT) -> None:
        async for records in batches:
            message = batches.current_event.message
            changed: dict[bytes, bytes] = {}

            async def route(outbox: Outbox, records: list[Any] = records, changed: dict = changed) -> None:
                changed.clear()  # a retry routes the batch again from the stored entries
                by_key: dict[bytes, list[tuple[Any, list[Item]]]] = defaultdict(list)
                for record in records:
                    try:
                        incoming = await _decode(outbox, record, partitions)
                    except Exception as error:  # InvalidPayload, or a bug: this record alone
                        await send_to_dlq(outbox, record, error)
                        continue
                    if incoming:
                        by_key[record.key or b""].append((record, incoming))
                matched: list[CarrierScan] = []
                for key, arrivals in by_key.items():
                    entry, released, entry_changed = await _route_key(outbox, stored_entry, key, arrivals)
                    matched.extend(released)
                    if entry_changed:
                        changed[key] = entry.model_dump_json().encode()
                await outbox.envelopes(topics.ORDER_EVENTS, partitions,
                                       ((scan.order_id, scan.model_dump_json().encode()) for scan in matched))

            # Matched scans reach the broker before the entries that released them are stored.
            await deliver(app, "scan router: scans", route)
            await deliver(app, "scan router: entries",
                          lambda outbox, p=message.partition, c=changed: outbox.write_table(tracking, p, c))
            watermark.processed(message, records)


async def _route_key(outbox: Outbox, stored_entry: Any, key: bytes, arrivals: list[tuple[Any, list[Item]]]
                     ) -> tuple[TrackingEntry, list[CarrierScan], bool]:
    """Apply one tracking number's arrivals to its entry. If one breaks the rules, start again
    from the stored entry without it, so the others still count and nothing half-applied stays."""
    skipped: set[int] = set()
    while True:
        entry = stored_entry(key)
        released: list[CarrierScan] = []
        changed = False
        for index, (record, items) in enumerate(arrivals):
            if index in skipped:
                continue
            try:
                for item in items:
                    entry, matched, item_changed = update_entry(entry, item)
                    changed = changed or item_changed
                    released.extend(matched)
            except Exception as error:
                await send_to_dlq(outbox, record, error)
                skipped.add(index)
                break
        else:
            return entry, released, changed


async def _decode(outbox: Outbox, record: Any, partitions: int) -> list[Item]:
    if record.topic == topics.TRACKING_LINKS:
        return [TrackingLink.model_validate_json(record.value)]
    ingested_at = datetime.fromtimestamp(record.timestamp / 1000, tz=timezone.utc)
    if record.topic == topics.CARRIER_SCANS_REKEYED:
        return list(canonical.parse(record.value or b"", ingested_at))
    source = header(record, topics.SOURCE_HEADER)
    if not source:
        raise InvalidPayload("missing_source", f"header {topics.SOURCE_HEADER!r} names no source")
    scans, rejected = parse_payload(source.decode(errors="replace"), record.value or b"", ingested_at)
    for error, part in rejected:  # one shipment of an interchange: the others go on
        await send_to_dlq(outbox, record, error, value=part)
    return await _rekey_foreign(outbox, record.key or b"", scans, partitions)


async def _rekey_foreign(outbox: Outbox, key: bytes, scans: list[CarrierScan], partitions: int) -> list[Item]:
    """Keep the scans of this message's tracking number; send the others to their own key."""
    own, foreign = split_by_tracking_number(key.decode(errors="replace"), scans)
    await outbox.keyed(topics.CARRIER_SCANS_REKEYED, partitions,
                       ((number, canonical.dump(group)) for number, group in foreign.items()))
    return list(own)
