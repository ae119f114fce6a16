"""The whole pipeline's rules in one process, in produce order: what the customers of a
simulated stream must end up hearing, to compare the distributed run against."""

from __future__ import annotations

from datetime import UTC, datetime

from models import topics
from models.carriers import parse_carrier_payload
from models.effects import NotificationCommand, TrackingLink
from models.errors import InvalidPayload
from models.fulfillment import parse_fulfillment_event
from models.order import OrderState, apply
from models.routing import TrackingEntry, link_tracking, route_scan
from trackline.simulator import Outgoing


def expected_notifications(messages: list[Outgoing]) -> dict[str, NotificationCommand]:
    orders: dict[str, OrderState] = {}
    tracking: dict[str, TrackingEntry] = {}
    commands: dict[str, NotificationCommand] = {}

    def apply_all(events) -> None:
        for event in events:
            orders[event.order_id], effects = apply(orders.get(event.order_id), event)
            for effect in effects:
                if isinstance(effect, NotificationCommand):
                    commands[effect.command_id] = effect
                elif isinstance(effect, TrackingLink):
                    entry = tracking.setdefault(effect.tracking_number, TrackingEntry())
                    tracking[effect.tracking_number], released = link_tracking(entry, effect)
                    apply_all(released)

    for message in messages:
        try:
            if message.topic == topics.FC_EVENTS:
                apply_all([parse_fulfillment_event(message.value)])
            else:
                source = dict(message.headers).get(topics.SOURCE_HEADER, b"").decode()
                for scan in parse_carrier_payload(source, message.value, datetime.now(UTC)):
                    entry = tracking.setdefault(message.key.decode(), TrackingEntry())
                    tracking[message.key.decode()], matched = route_scan(entry, scan)
                    apply_all(matched)
        except InvalidPayload:
            continue
    return commands
