"""Order agent: fulfillment events and matched scans -> order state and its effects."""

from __future__ import annotations

import faust
from pydantic import ValidationError

from models import topics
from models.effects import HistoryRecord, NotificationCommand, TrackingLink
from models.errors import InvalidPayload
from models.events import order_events_batch_adapter
from models.fulfillment import parse_fulfillment_event
from models.order import Event, OrderState, apply_batch
from streams.app import Channels
from streams.dead_letters import send_to_dlq
from streams.partitioning import partition_of, send_envelopes

BATCH = 2000
BATCH_WITHIN = 0.02


def register(app: faust.App, ch: Channels) -> None:
    partitions = app.conf.topic_partitions
    orders = app.Table("orders", default=None, key_type=bytes, value_type=bytes,
                       partitions=partitions)

    @app.agent(ch.orders_input, name="order-tracker")
    async def track_orders(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(BATCH, within=BATCH_WITHIN):
            events: list[Event] = []
            carrier_of: dict[str, faust.EventT] = {}  # order id -> a message in its partition
            for message_event in batch:
                try:
                    decoded = _decode(message_event.message)
                except InvalidPayload as error:
                    await send_to_dlq(ch.dlq, message_event, error)
                    continue
                for order_event in decoded:
                    carrier_of[order_event.order_id] = message_event
                events.extend(decoded)
            states: dict[str, OrderState | None] = {}
            for order_id, message_event in carrier_of.items():
                with partition_of(message_event):
                    stored = orders.get(order_id.encode())
                states[order_id] = OrderState.model_validate_json(stored) if stored else None
            changed, effects = apply_batch(states, events)
            for order_id, state in changed.items():
                with partition_of(carrier_of[order_id]):
                    orders[order_id.encode()] = state.model_dump_json().encode()
            await _publish(ch, effects, partitions)


def _decode(message: faust.types.Message) -> list[Event]:
    if message.topic == topics.FC_EVENTS:
        return [parse_fulfillment_event(message.value or b"")]
    try:
        return list(order_events_batch_adapter.validate_json(message.value or b""))
    except ValidationError as exc:  # only our own router writes here: a bug, not bad input
        raise InvalidPayload("invalid_internal_event", str(exc)[:500]) from None


async def _publish(ch: Channels, effects: list, partitions: int) -> None:
    history: list[tuple[str, bytes]] = []
    for effect in effects:
        if isinstance(effect, HistoryRecord):
            history.append((effect.order_id, effect.model_dump_json().encode()))
        elif isinstance(effect, NotificationCommand):
            await ch.notifications.send(key=effect.order_id.encode(),
                                        value=effect.model_dump_json().encode())
        elif isinstance(effect, TrackingLink):
            await ch.tracking_links.send(key=effect.tracking_number.encode(),
                                         value=effect.model_dump_json().encode())
    await send_envelopes(ch.history, history, partitions)
