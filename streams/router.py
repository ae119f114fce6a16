"""Scan router: raw carrier payloads -> canonical scans matched to their order.

Reads ``carrier-scans.raw`` and ``tracking-links`` (both keyed by tracking number, so
co-partitioned) and keeps, per tracking number, the links to orders and the scans that
came before their link.
"""

from __future__ import annotations

from datetime import datetime, timezone

import faust

from models import topics
from models.carriers import parse_carrier_payload
from models.effects import TrackingLink
from models.errors import InvalidPayload
from models.events import CarrierScan
from models.routing import TrackingEntry, link_tracking, route_scan
from streams.app import Channels
from streams.dead_letters import send_to_dlq
from streams.partitioning import partition_of, send_envelopes

BATCH = 2000
BATCH_WITHIN = 0.02


def register(app: faust.App, ch: Channels) -> None:
    partitions = app.conf.topic_partitions
    tracking = app.Table("tracking", default=None, key_type=bytes, value_type=bytes,
                         partitions=partitions)

    @app.agent(ch.router_input, name="scan-router")
    async def route_scans(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(BATCH, within=BATCH_WITHIN):
            changed: dict[bytes, tuple[TrackingEntry, faust.EventT]] = {}
            matched: list[CarrierScan] = []
            for event in batch:
                message = event.message
                try:
                    incoming = _decode(message)
                except InvalidPayload as error:
                    await send_to_dlq(ch.dlq, event, error)
                    continue
                key = message.key or (incoming[0].tracking_number.encode() if incoming else b"")
                if key in changed:
                    entry = changed[key][0]
                else:
                    with partition_of(event):
                        stored = tracking.get(key)
                    entry = TrackingEntry.model_validate_json(stored) if stored else TrackingEntry()
                dirty = False
                for item in incoming:
                    if isinstance(item, TrackingLink):
                        entry, released = link_tracking(entry, item)
                        dirty = True
                    else:
                        entry, released = route_scan(entry, item)
                        dirty = dirty or not released
                    matched.extend(released)
                if dirty:
                    changed[key] = (entry, event)
            for key, (entry, event) in changed.items():
                with partition_of(event):
                    tracking[key] = entry.model_dump_json().encode()
            await send_envelopes(
                ch.order_events,
                ((scan.order_id, scan.model_dump_json().encode()) for scan in matched),
                partitions,
            )


def _decode(message: faust.types.Message) -> list[TrackingLink] | list[CarrierScan]:
    if message.topic == topics.TRACKING_LINKS:
        return [TrackingLink.model_validate_json(message.value)]
    headers = dict(message.headers or {})
    source = headers.get(topics.SOURCE_HEADER)
    if not source:
        raise InvalidPayload("missing_source", f"header {topics.SOURCE_HEADER!r} names no source")
    if isinstance(source, bytes):
        source = source.decode(errors="replace")
    ingested_at = datetime.fromtimestamp(message.timestamp, tz=timezone.utc)
    return parse_carrier_payload(source, message.value or b"", ingested_at)
