"""Order agent: fulfillment events, matched scans and clock ticks -> order state and effects.

Each agent step is a set of record batches grouped by partition (``streams.bulk``): every
order in it is read from the table once, has all its events applied, and is written back once. Commands go
to the notification policy (keyed by customer), alerts to ops, history to the sink, and
each changed order's next deadline to the deadline index.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import faust
from pydantic import ValidationError

from models import topics
from models.codec import decode_lane_models, encode
from models.effects import Alert, Effect, HistoryRecord, NotificationCommand, TrackingLink
from models.errors import InvalidPayload
from models.events import ClockTick, order_events_batch_adapter
from models.feed_latency import FeedLatency
from models.formats import keeping_unknown_values
from models.fulfillment import parse_fulfillment_event
from models.order import Event, OrderState, apply_batch
from models.retention import marker_expires_at, refused_for_expired
from models.thresholds import Thresholds
from models.transit import LaneModels, LaneModelsUpdated, TransitObserved, TransitStarted, in_records
from streams import clock, failpoints, order_store, watermark
from streams.app import Channels, store_options
from streams.batch_io import Outbox, deliver, store_steps, whole_batch_or_exit
from streams.bulk import PartitionStep, partition_steps
from streams.dead_letters import send_to_dlq
from streams.decoded import DecodedValues
from trackline.metrics import STAGE

log = logging.getLogger(__name__)
Item = Event | LaneModelsUpdated  # what an order partition carries: order events, and lane models for all
FEED_LATENCY_KEY = b"\x00trackline:feed-latency"  # per partition, beside the orders it measured


def register(app: faust.App, ch: Channels, rules: Thresholds, tick_interval: float = clock.TICK_INTERVAL,
             own_estimate: bool = True) -> Any:
    """The order tracker; returns its orders table (the order lookup reads it)."""
    partitions = app.conf.topic_partitions
    orders = app.Table("orders", default=None, key_type=bytes, value_type=bytes, partitions=partitions,
                       options=store_options())
    decoded = DecodedStates(orders)
    deadlines = clock.PartitionDeadlines()
    latencies: dict[int, FeedLatency] = {}
    lane_models: dict[int, LaneModels] = {}  # the models in force per partition (models.transit)
    clock.register(app, orders, deadlines, tick_interval)

    @app.on_partitions_revoked.connect
    async def forget_partition_caches(*args: Any, **kwargs: Any) -> None:
        decoded.clear()  # another worker may change them now
        deadlines.clear()  # rebuilt from the table once this worker owns partitions again
        latencies.clear()
        lane_models.clear()
        watermark.PROGRESS.forget()

    def stored_state(order_id: str) -> OrderState | None:
        stored = orders.get(order_id.encode())
        try:
            return order_store.decode(stored) if stored and order_store.marker(stored) is None else None
        except order_store.UnreadableState as exc:  # the order's events go to the DLQ, the batch goes on
            raise InvalidPayload("unreadable_order_state",
                                 f"order {order_id[:64]}: its stored state does not decode ({exc})") from None

    def partition_context(partition: int) -> tuple[FeedLatency, LaneModels | None]:
        """The partition's feed latencies and the lane models in force (read once per assignment)."""
        if partition not in latencies:
            try:
                latencies[partition] = FeedLatency.load(orders.get(FEED_LATENCY_KEY), rules)
            except Exception:  # a damaged value: measured again from the configured start
                log.error("partition %s: stored feed latencies do not decode; starting afresh", partition)
                latencies[partition] = FeedLatency(rules)
        if partition not in lane_models:
            lane_models[partition] = _stored_models(orders, partition)
        # Off: no model at all, not the last ones stored (they would never change again),
        # and no estimate work per event.
        return latencies[partition], lane_models[partition] if own_estimate else None

    async def apply_and_publish(outbox: Outbox, records: list[Any], applied: Applied, latency: FeedLatency,
                                models: LaneModels | None) -> None:
        events: list[Item] = []
        origins: list[Any] = []
        started = time.thread_time()
        for record in records:
            if not own_estimate and record.key == topics.LANE_MODELS_KEY:
                continue  # our own estimate is off (TRACKLINE_OWN_ESTIMATE)
            try:
                found = _decode(record)
            except Exception as error:  # InvalidPayload, or a bug: this record alone
                await send_to_dlq(outbox, record, error)
                continue
            events.extend(found)
            origins.extend([record] * len(found))
        # A retry starts again from the stored states: take() reads what the cache lost.
        taking = time.thread_time()
        STAGE["order_decode"].inc(taking - started)
        states, markers, unreadable = decoded.take({event.order_id for event in events
                                                    if not isinstance(event, LaneModelsUpdated)})
        STAGE["state_decode"].inc(time.thread_time() - taking)
        if unreadable:  # this order alone waits in the DLQ; the batch goes on
            events, origins = await _refuse_unreadable(outbox, events, origins, unreadable)
        if markers:  # orders removed by retention: their late events are refused
            events, origins, removed = await _refuse_expired(outbox, events, origins, markers, rules,
                                                             partitions)
        else:
            removed = {}
        applying = time.thread_time()
        outcome = apply_batch(states, events, rules, reload=stored_state, latency=latency, models=models)
        STAGE["apply"].inc(time.thread_time() - applying)
        for index, exc in outcome.failed:  # the failing event alone, not its envelope
            failed = events[index]
            assert not isinstance(failed, LaneModelsUpdated)  # never applied to an order
            await send_to_dlq(outbox, origins[index], exc, value=failed.model_dump_json().encode())
        await _publish(outbox, outcome.effects if own_estimate else
                       [e for e in outcome.effects if not isinstance(e, TransitObserved | TransitStarted)],
                       partitions)
        applied.states, applied.changed, applied.removed, applied.models = \
            states, outcome.changed, removed, outcome.models

    def encode_partition(applied: Applied, latency: FeedLatency, models: LaneModels | None
                         ) -> dict[bytes, bytes | None]:
        """The table values a partition's applied batch writes (None: a tombstone)."""
        changed = applied.changed
        encoded: dict[bytes, bytes | None] = {
            order_id.encode(): order_store.encode_marker(state, state.next_deadline)
            if state.expired_at is not None and state.next_deadline is not None else order_store.encode(state)
            for order_id, state in changed.items()}
        encoded.update({order_id.encode(): None for order_id in applied.removed})  # markers' ends
        if latency.changed:
            encoded[FEED_LATENCY_KEY] = latency.dump()
            latency.changed = False
        new_models = applied.models
        if new_models is not None and new_models is not models:
            parts = in_records(list(new_models.models.values()))
            encoded[topics.LANE_MODELS_KEY] = str(len(parts)).encode()  # how many parts follow
            encoded.update({_part_key(i): encode(LaneModelsUpdated(models=part))
                            for i, part in enumerate(parts)})
        return encoded

    async def track(steps: list[PartitionStep]) -> None:
        """One agent step, every partition in it together: two waits for the broker's acks
        per step (effects, then state), not per partition."""
        generation = decoded.generation
        work: list[tuple[PartitionStep, FeedLatency, LaneModels | None, Applied]] = []
        for step in steps:
            with step.current():
                work.append((step, *partition_context(step.partition), Applied()))

        # A retried step is applied again from the stored states: its feed delays must not be
        # counted twice, or the retry's allowances (and deadlines) would differ from the first try's.
        for _, latency, _, _ in work:
            latency.begin()

        async def effects(outbox: Outbox) -> None:
            for step, latency, models, applied in work:
                latency.rollback()  # nothing to undo on the first try
                with step.current():
                    await apply_and_publish(outbox, step.records, applied, latency, models)

        # Effects reach the broker before the state that remembers them is stored:
        # a crash in between replays the batch and re-emits the same command ids,
        # where the other order would remember milestones no customer was told.
        await deliver(app, "order tracker: effects", effects)
        failpoints.kill_if("kill_after_send")
        encoding = time.thread_time()
        encoded = [encode_partition(applied, latency, models) for _, latency, models, applied in work]
        STAGE["state_encode"].inc(time.thread_time() - encoding)

        await store_steps(app, "order tracker: state", orders, steps,
                          {step.partition: values for (step, *_), values in zip(work, encoded, strict=True)})
        for step, _, models, applied in work:
            for order_id, state in applied.changed.items():
                deadlines.schedule(step.partition, order_id, state.next_deadline)
            for order_id in applied.removed:
                deadlines.schedule(step.partition, order_id, None)
            decoded.keep(applied.states, generation)
            new_models = applied.models
            if new_models is not None and new_models is not models and generation == decoded.generation:
                lane_models[step.partition] = new_models  # not revoked meanwhile
            step.processed()

    @app.agent(ch.orders_input, name="order-tracker")
    async def track_orders(batches: faust.StreamT) -> None:
        async for steps in partition_steps(batches):
            async with whole_batch_or_exit("order tracker"):
                await track(steps)

    return orders


@dataclass
class Applied:
    """What applying one partition's records gave, kept for storing it once the effects are sent."""

    states: dict[str, OrderState | None] = field(default_factory=dict)  # every order taken, as applied
    changed: dict[str, OrderState] = field(default_factory=dict)  # the ones to write back
    removed: dict[str, order_store.Marker] = field(default_factory=dict)  # markers whose time is up
    models: LaneModels | None = None  # the lane models in force after the records


class DecodedStates(DecodedValues[str, OrderState]):
    """The order states this worker stored last (``streams.decoded``). A batch takes its states
    out and they come back only once stored, so a failed batch leaves nothing half-applied here."""

    LIMIT = 20_000

    def __init__(self, table: Any) -> None:
        super().__init__(self.LIMIT)
        self.table = table

    def take(self, order_ids: set[str]) -> tuple[dict[str, OrderState | None], dict[str, order_store.Marker],
                                                 dict[str, str]]:
        """The orders' states, the markers of those removed by retention, and why each
        order whose stored value does not decode could not be read."""
        taken: dict[str, OrderState | None] = {}
        markers: dict[str, order_store.Marker] = {}
        unreadable: dict[str, str] = {}
        for order_id in order_ids:
            state = self.values.pop(order_id, None)
            if state is None:
                stored = self.table.get(order_id.encode())
                try:  # an empty value is damage too, not "no order"
                    if stored is not None and (found := order_store.marker(stored)) is not None:
                        markers[order_id] = found
                        continue
                    state = order_store.decode(stored) if stored is not None else None
                except order_store.UnreadableState as exc:
                    unreadable[order_id] = str(exc)
                    continue
            taken[order_id] = state
        return taken, markers, unreadable

    def keep(self, states: Mapping[str, OrderState | None], generation: int) -> None:
        # An expired one is a marker now; None: no state.
        super().keep({order_id: state for order_id, state in states.items()
                      if state is not None and state.expired_at is None}, generation)


def _part_key(index: int) -> bytes:
    return topics.LANE_MODELS_KEY + f":{index}".encode()


def _stored_models(orders: Any, partition: int) -> LaneModels:
    """The lane models stored beside the partition's orders: a count, then that many parts."""
    models = LaneModels()
    try:
        count = int(orders.get(topics.LANE_MODELS_KEY) or b"0")
        for index in range(count):
            models = models.updated(decode_lane_models(orders.get(_part_key(index)) or b""))
    except Exception:  # a damaged value: the next updates bring the models back
        log.error("partition %s: stored lane models do not decode; estimating without them", partition)
        return LaneModels()
    return models


def _decode(record: Any) -> list[Item]:
    if record.key == topics.LANE_MODELS_KEY and record.topic == topics.ORDER_EVENTS:
        try:
            return [decode_lane_models(record.value or b"")]
        except Exception as exc:  # only the lane-model agent writes these: a bug, not input
            raise InvalidPayload("invalid_internal_event", f"lane models: {exc}"[:500]) from None
    if record.topic == topics.FC_EVENTS:
        event = parse_fulfillment_event(record.value or b"")
        if (record.key or b"") != event.order_id.encode():
            # Its state would land on the partition of another key, beside no other event of the order.
            raise InvalidPayload("wrong_key", f"keyed {(record.key or b'')[:64]!r}, not by its order id "
                                              f"{event.order_id[:64]!r}")
        return [event.model_copy(update={"ingested_at": datetime.fromtimestamp(record.timestamp / 1000, timezone.utc)})]
    try:
        with keeping_unknown_values():  # a newer worker's router may know statuses this one does not
            return list(order_events_batch_adapter.validate_json(record.value or b""))
    except ValidationError as exc:  # only our own router writes here: a bug, not bad input
        raise InvalidPayload("invalid_internal_event", str(exc)[:500]) from None


async def _refuse_expired(outbox: Outbox, events: list[Item], origins: list[Any],
                          markers: dict[str, order_store.Marker], rules: Thresholds, partitions: int
                          ) -> tuple[list[Item], list[Any], dict[str, order_store.Marker]]:
    """Take the events of removed orders out of the batch: a late one goes to history and the
    DLQ (``order_expired``), the order is not started again. A tick at a marker's end removes
    the marker and the order's tracking entries. Returns the rest, their origins and the
    markers that end now."""
    kept: list[Item] = []
    kept_origins: list[Any] = []
    ending: dict[str, order_store.Marker] = {}
    rows: list[tuple[str, bytes]] = []
    for event, origin in zip(events, origins, strict=True):
        if isinstance(event, LaneModelsUpdated):  # for every order of the partition
            kept.append(event)
            kept_origins.append(origin)
            continue
        found = markers.get(event.order_id)
        if found is None:
            kept.append(event)
            kept_origins.append(origin)
        elif isinstance(event, ClockTick):
            # The marker's own deadline; an older tick redelivered is nothing now.
            if event.occurred_at >= marker_expires_at(found.expired_at, rules):
                ending[event.order_id] = found
        else:
            rows.append((event.order_id, encode(refused_for_expired(event, found.expired_at))))
            await send_to_dlq(outbox, origin, InvalidPayload(
                "order_expired", f"order {event.order_id} was removed at {found.expired_at.isoformat()}"),
                value=event.model_dump_json().encode())
    await outbox.envelopes(topics.HISTORY, partitions, rows)
    links = [(number, TrackingLink(carrier=carrier, tracking_number=number, order_id=order_id, package_id="",
                                   announced_at=marker.expired_at, removed=True).model_dump_json().encode())
             for order_id, marker in ending.items() for carrier, number in marker.tracking]
    await outbox.keyed(topics.TRACKING_LINKS, partitions, links)
    return kept, kept_origins, ending


async def _refuse_unreadable(outbox: Outbox, events: list[Item], origins: list[Any], unreadable: dict[str, str]
                             ) -> tuple[list[Item], list[Any]]:
    """Take the events of orders whose stored state does not decode out of the batch. Each one
    goes to the DLQ (``unreadable_order_state``), to be replayed once the state is repaired or
    removed; a clock tick for such an order is dropped (the next event schedules it again)."""
    kept: list[Item] = []
    kept_origins: list[Any] = []
    for event, origin in zip(events, origins, strict=True):
        if isinstance(event, LaneModelsUpdated):  # for every order of the partition
            kept.append(event)
            kept_origins.append(origin)
            continue
        why = unreadable.get(event.order_id)
        if why is None:
            kept.append(event)
            kept_origins.append(origin)
        elif not isinstance(event, ClockTick):
            await send_to_dlq(outbox, origin, InvalidPayload(
                "unreadable_order_state", f"order {event.order_id[:64]}: its stored state does not decode ({why})"),
                value=event.model_dump_json().encode())
    for order_id in unreadable:
        log.error("order %s: stored state does not decode; its events go to the DLQ", order_id[:64])
    return kept, kept_origins


async def _publish(outbox: Outbox, effects: list[Effect], partitions: int) -> None:
    started = time.thread_time()
    history: list[tuple[str, bytes]] = []
    intents: list[tuple[str, bytes]] = []
    alerts: list[tuple[str, bytes]] = []
    links: list[tuple[str, bytes]] = []
    observed: list[tuple[str, bytes]] = []
    for effect in effects:
        if isinstance(effect, HistoryRecord):
            history.append((effect.order_id, encode(effect)))
        elif isinstance(effect, NotificationCommand):
            # Keyed by customer: the notification policy holds that customer's preferences.
            intents.append((effect.customer_id, effect.model_dump_json().encode()))
        elif isinstance(effect, Alert):
            alerts.append((effect.order_id, effect.model_dump_json().encode()))
        elif isinstance(effect, TrackingLink):
            links.append((effect.tracking_number, effect.model_dump_json().encode()))
        elif isinstance(effect, TransitObserved | TransitStarted):
            observed.append((effect.carrier, encode(effect)))
    STAGE["effect_encode"].inc(time.thread_time() - started)
    await outbox.keyed(topics.TRACKING_LINKS, partitions, links)
    await outbox.keyed(topics.NOTIFICATION_INTENTS, partitions, intents)
    await outbox.keyed(topics.ALERTS, partitions, alerts)
    await outbox.envelopes(topics.HISTORY, partitions, history)
    await outbox.keyed(topics.TRANSIT_OBSERVATIONS, partitions, observed)
