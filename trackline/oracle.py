"""What a stream of messages must yield, computed in one process from the pure core alone.

The messages are applied in produce order, as the rules would see them with nothing lost,
repeated or reordered: the commands customers must hear and the history rows ClickHouse must
hold. A distributed run, with or without faults, is compared against this. The rules' clocks
are event-time watermarks, so the answer depends on the messages, not on when they are read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from models import topics
from models.carriers import parse_carrier_payload
from models.effects import HistoryRecord, NotificationCommand, TrackingLink, stable_id
from models.errors import InvalidPayload
from models.fulfillment import parse_fulfillment_event
from models.order import OrderState, apply
from models.preferences import CustomerPreferences, address
from models.routing import TrackingEntry, link_tracking, route_scan
from trackline.simulator import Outgoing


@dataclass
class Expected:
    commands: dict[str, NotificationCommand] = field(default_factory=dict)  # as the order rules emit them
    addressed: dict[str, NotificationCommand] = field(default_factory=dict)  # as the policy sends them
    history: set[str] = field(default_factory=set)  # record ids


def expected_notifications(messages: list[Outgoing]) -> dict[str, NotificationCommand]:
    """The commands the order rules emit for ``messages``, by id."""
    return expected(messages).commands


def expected(messages: list[Outgoing], preferences: dict[str, CustomerPreferences] | None = None,
             delivered: bool = False, received_at: Callable[[Outgoing], datetime] | None = None) -> Expected:
    """Commands and history rows for ``messages``. ``preferences`` (by customer) address the
    commands; with ``delivered``, each addressed command's "sent" row of the notifier counts
    too (one per channel). ``received_at``: the broker timestamp each message was produced
    with, which the pipeline reads as the ingest time (default: now, for runs that compare
    only the commands' ids)."""
    orders: dict[str, OrderState] = {}
    tracking: dict[str, TrackingEntry] = {}
    out = Expected()

    def apply_all(events) -> None:
        for event in events:
            orders[event.order_id], effects = apply(orders.get(event.order_id), event)
            for effect in effects:
                if isinstance(effect, NotificationCommand):
                    out.commands[effect.command_id] = effect
                elif isinstance(effect, HistoryRecord):
                    out.history.add(effect.record_id)
                elif isinstance(effect, TrackingLink):
                    entry = tracking.setdefault(effect.tracking_number, TrackingEntry())
                    tracking[effect.tracking_number], released = link_tracking(entry, effect)
                    apply_all(released)

    for message in messages:
        ingested = received_at(message) if received_at else datetime.now(UTC)
        try:
            if message.topic == topics.FC_EVENTS:
                event = parse_fulfillment_event(message.value)
                apply_all([event.model_copy(update={"ingested_at": ingested}) if received_at else event])
            elif message.topic == topics.CARRIER_SCANS_RAW:
                source = dict(message.headers).get(topics.SOURCE_HEADER, b"").decode()
                for scan in parse_carrier_payload(source, message.value, ingested):
                    entry = tracking.setdefault(message.key.decode(), TrackingEntry())
                    tracking[message.key.decode()], matched = route_scan(entry, scan)
                    apply_all(matched)
        except InvalidPayload:
            continue
    for command in out.commands.values():
        sent, row = address(command, (preferences or {}).get(command.customer_id))
        out.history.add(row.record_id)
        if sent is None:
            continue
        out.addressed[sent.command_id] = sent
        if delivered:
            out.history.update(stable_id(sent.command_id, "delivery", channel.value, "sent")
                               for channel in sent.channels)
    return out
