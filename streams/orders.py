"""Order agent: fulfillment events and matched scans -> order state and its effects.

Each stream event is a batch of records of one partition: every order in it is read
from the table once, has all its events applied, and is written back once.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

import faust
from pydantic import ValidationError

from models import topics
from models.effects import Effect, HistoryRecord, NotificationCommand, TrackingLink
from models.errors import InvalidPayload
from models.events import order_events_batch_adapter
from models.fulfillment import parse_fulfillment_event
from models.order import Event, OrderState, apply_batch
from streams import lookup
from streams.app import Channels
from streams.batch_io import send_envelopes, send_keyed, write_table
from streams.dead_letters import send_to_dlq


def register(app: faust.App, ch: Channels) -> None:
    partitions = app.conf.topic_partitions
    orders = app.Table("orders", default=None, key_type=bytes, value_type=bytes, partitions=partitions)
    lookup.register(app, orders)
    decoded = DecodedStates(orders)

    @app.on_partitions_revoked.connect
    async def forget_decoded_states(*args: Any, **kwargs: Any) -> None:
        decoded.clear()  # another worker may change them now

    @app.agent(ch.orders_input, name="order-tracker")
    async def track_orders(batches: faust.StreamT) -> None:
        async for records in batches:
            events: list[Event] = []
            for record in records:
                try:
                    events.extend(_decode(record))
                except InvalidPayload as error:
                    await send_to_dlq(ch.dlq, record, error)
            states = decoded.take({event.order_id for event in events})
            changed, effects = apply_batch(states, events)
            # Effects reach the broker before the state that remembers them is stored:
            # a crash in between replays the batch and re-emits the same command ids,
            # where the other order would remember milestones no customer was told.
            await _publish(app, ch, effects, partitions)
            await app.producer.flush()
            await write_table(app, orders, batches.current_event.message.partition,
                              {order_id.encode(): state.model_dump_json().encode()
                               for order_id, state in changed.items()})
            decoded.keep(states)


class DecodedStates:
    """The order states this worker stored last, kept decoded for the next batch.

    A batch takes its states out and they come back only once stored, so a failed batch
    leaves nothing half-applied here. Valid only while this worker owns the partitions:
    cleared at every revocation.
    """

    LIMIT = 20_000

    def __init__(self, table: Any) -> None:
        self.table = table
        self.states: OrderedDict[str, OrderState] = OrderedDict()

    def take(self, order_ids: set[str]) -> dict[str, OrderState | None]:
        taken: dict[str, OrderState | None] = {}
        for order_id in order_ids:
            state = self.states.pop(order_id, None)
            if state is None:
                stored = self.table.get(order_id.encode())
                state = OrderState.model_validate_json(stored) if stored else None
            taken[order_id] = state
        return taken

    def keep(self, states: dict[str, OrderState | None]) -> None:
        for order_id, state in states.items():
            if state is not None:
                self.states[order_id] = state
        while len(self.states) > self.LIMIT:
            self.states.popitem(last=False)

    def clear(self) -> None:
        self.states.clear()


def _decode(record: Any) -> list[Event]:
    if record.topic == topics.FC_EVENTS:
        event = parse_fulfillment_event(record.value or b"")
        return [event.model_copy(update={"ingested_at": datetime.fromtimestamp(record.timestamp / 1000, timezone.utc)})]
    try:
        return list(order_events_batch_adapter.validate_json(record.value or b""))
    except ValidationError as exc:  # only our own router writes here: a bug, not bad input
        raise InvalidPayload("invalid_internal_event", str(exc)[:500]) from None


async def _publish(app: faust.App, ch: Channels, effects: list[Effect], partitions: int) -> None:
    history: list[tuple[str, bytes]] = []
    notifications: list[tuple[str, bytes]] = []
    for effect in effects:
        if isinstance(effect, HistoryRecord):
            history.append((effect.order_id, effect.model_dump_json().encode()))
        elif isinstance(effect, NotificationCommand):
            notifications.append((effect.order_id, effect.model_dump_json().encode()))
        elif isinstance(effect, TrackingLink):
            await ch.tracking_links.send(key=effect.tracking_number.encode(),
                                         value=effect.model_dump_json().encode())
    await send_keyed(app, topics.NOTIFICATIONS, partitions, notifications)
    await send_envelopes(app, topics.HISTORY, partitions, history)
