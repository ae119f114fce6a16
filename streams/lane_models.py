"""Lane-model agent: delivered packages -> lane models -> every order partition.

The order agent publishes each delivered package (``TransitObserved``), and each package
handed over (``TransitStarted``: a young lane counts it as travelling), keyed by carrier, so
a carrier's lanes and working days live on one partition. This agent adds them to each
key's window (models.transit.learn) and sends the changed models as one versioned
``LaneModelsUpdated`` record to *every* order-events partition. Each order partition applies
it at its place in that partition's stream, so a replay gives the same estimates.

The models reach the order agents before the windows that produced them are stored: a crash
in between re-learns the same deliveries into the same versions (a repeat is ignored).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import faust

from models import topics
from models.codec import decode_lane_window, decode_transit_observed, encode
from models.errors import InvalidPayload
from models.thresholds import Thresholds
from models.transit import (
    LaneModel,
    LaneModelsUpdated,
    LaneWindow,
    TransitRecord,
    broadcast,
    carrier_key,
    changed_windows,
    learn,
)
from streams.app import Channels, store_options
from streams.batch_io import Outbox, deliver, whole_batch_or_exit
from streams.dead_letters import send_to_dlq


def register(app: faust.App, ch: Channels, rules: Thresholds) -> Any:
    partitions = app.conf.topic_partitions
    windows_table = app.Table("lane-windows", default=None, key_type=bytes, value_type=bytes, partitions=partitions,
                              options=store_options())

    @app.agent(ch.transit_input, name="lane-models")
    async def learn_lanes(batches: faust.StreamT) -> None:
        async for records in batches:
            async with whole_batch_or_exit("lane models"):
                current = batches.current_event
                assert current is not None
                partition = current.message.partition
                learned: dict[str, Any] = {}

                async def publish(outbox: Outbox, records: list[Any] = records, learned: dict = learned) -> None:
                    observed: list[TransitRecord] = []
                    offsets: list[int] = []
                    for record in records:
                        try:
                            observed.append(decode_transit_observed(record.value or b""))
                            offsets.append(record.offset)
                        except Exception as error:  # only our order agent writes here: a bug, not input
                            await send_to_dlq(outbox, record, InvalidPayload(
                                "invalid_internal_event", f"not a transit observation: {error}"[:500]))
                    windows = _windows(windows_table, observed)
                    models: list[LaneModel] = learn(windows, observed, rules.lane_model_window, offsets)
                    published = datetime.now(UTC).isoformat()
                    updates = [(topics.LANE_MODELS_KEY, encode(LaneModelsUpdated(models=part, published_at=published)))
                               for part in broadcast(models)]
                    for target in range(partitions):  # a broadcast: every order partition
                        await outbox.records(topics.ORDER_EVENTS, target, updates)
                    learned["windows"] = {key.encode(): encode(windows[key])
                                          for key in changed_windows(models, observed) if key in windows}

                await deliver(app, "lane models: publish", publish)

                async def store(outbox: Outbox, p: int = partition, learned: dict = learned) -> None:
                    await outbox.write_table(windows_table, p, learned["windows"])

                await deliver(app, "lane models: windows", store)

    return windows_table


def _windows(table: Any, observed: list[TransitRecord]) -> dict[str, LaneWindow]:
    """The stored windows the observations touch (a damaged one starts afresh: it is a model, not an order)."""
    keys = {key for seen in observed for key in seen.keys()} | {carrier_key(seen.carrier) for seen in observed}
    windows: dict[str, LaneWindow] = {}
    for key in keys:
        stored = table.get(key.encode())
        if stored:
            try:
                windows[key] = decode_lane_window(stored)
            except Exception:
                continue
    return windows
