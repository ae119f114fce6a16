"""Scan router: raw carrier payloads -> canonical scans matched to their order.

Reads ``carrier-scans.raw`` and ``tracking-links`` (both keyed by tracking number, so
co-partitioned) and keeps, per tracking number, the links to orders and the scans that
came before their link. Each stream event is a batch of records of one partition.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import faust

from models import topics
from models.carriers import canonical, parse_carrier_payload
from models.effects import TrackingLink
from models.errors import InvalidPayload
from models.events import CarrierScan
from models.routing import TrackingEntry, split_by_tracking_number, update_entry
from streams.app import Channels, store_options
from streams.batch_io import send_envelopes, write_table
from streams.dead_letters import header, send_to_dlq


def register(app: faust.App, ch: Channels) -> None:
    partitions = app.conf.topic_partitions
    tracking = app.Table("tracking", default=None, key_type=bytes, value_type=bytes, partitions=partitions,
                         options=store_options())

    @app.agent(ch.router_input, name="scan-router")
    async def route_scans(batches: faust.StreamT) -> None:
        async for records in batches:
            entries: dict[bytes, TrackingEntry] = {}
            changed: set[bytes] = set()
            matched: list[CarrierScan] = []
            for record in records:
                try:
                    incoming = _decode(record)
                except InvalidPayload as error:
                    await send_to_dlq(ch.dlq, record, error)
                    continue
                key = record.key or b""
                if record.topic == topics.CARRIER_SCANS_RAW:
                    incoming = await _rekey_foreign(ch, key, incoming)  # type: ignore[arg-type]
                    if not incoming:
                        continue
                entry = entries.get(key)
                if entry is None:
                    stored = tracking.get(key)
                    entry = entries[key] = TrackingEntry.model_validate_json(stored) if stored else TrackingEntry()
                for item in incoming:
                    entry, released, entry_changed = update_entry(entry, item)
                    if entry_changed:
                        changed.add(key)
                    matched.extend(released)
            # Matched scans reach the broker before the entries that released them are stored.
            await send_envelopes(app, topics.ORDER_EVENTS, partitions,
                                 ((scan.order_id, scan.model_dump_json().encode()) for scan in matched))
            await app.producer.flush()
            await write_table(app, tracking, batches.current_event.message.partition,
                              {key: entries[key].model_dump_json().encode() for key in changed})


async def _rekey_foreign(ch: Channels, key: bytes, scans: list[CarrierScan]) -> list[CarrierScan]:
    """Keep the scans of this message's tracking number; send the others to their own key."""
    own, foreign = split_by_tracking_number(key.decode(errors="replace"), scans)
    for tracking_number, group in foreign.items():
        await ch.carrier_scans.send(key=tracking_number.encode(), value=canonical.dump(group),
                                    headers=[(topics.SOURCE_HEADER, canonical.SOURCE.encode())])
    return own


def _decode(record: Any) -> list[TrackingLink] | list[CarrierScan]:
    if record.topic == topics.TRACKING_LINKS:
        return [TrackingLink.model_validate_json(record.value)]
    source = header(record, topics.SOURCE_HEADER)
    if not source:
        raise InvalidPayload("missing_source", f"header {topics.SOURCE_HEADER!r} names no source")
    ingested_at = datetime.fromtimestamp(record.timestamp / 1000, tz=timezone.utc)
    return parse_carrier_payload(source.decode(errors="replace"), record.value or b"", ingested_at)
