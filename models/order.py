"""Per-order rules: ``apply(state, event)`` folds one event into the order's state.

``apply`` is pure: it reads no clock and does no I/O. "Now" is the time trackline saw the
event (its ingest time) or, for a ``ClockTick``, the tick's time, which is the ingest-time
watermark (models.watermark): every record ingested by then has been read. Events may
arrive twice and out of order; the event's own time decides which status is current, and
each milestone is announced to the customer at most once.

Delay rules (``models.detection``) come in two kinds. Deadlines (nothing happened by a
time) open their ops alert only on a tick, so a backlog read in one batch never opens
one that a later record of the same backlog disproves; the customer is told once the
watermark is past the deadline plus the feed's latency allowance (models.feed_latency).
Findings (the carrier reported an exception or a later date) open on the event itself.
Any event closes an alert whose condition cleared. ``next_deadline`` tells the worker
when to send the next tick.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from itertools import pairwise
from typing import NamedTuple

from models.codec import as_dict, copy_state
from models.detection import (
    DEADLINE_KINDS,
    NOT_ACCEPTED,
    Condition,
    alert_key,
    conditions,
    end_of_local_day,
    feedback_due,
    local_date,
    local_hour,
    local_moment,
)
from models.effects import (
    Alert,
    AlertKind,
    Effect,
    HistoryRecord,
    NotificationCommand,
    NotificationType,
    TrackingLink,
    stable_id,
    tracking_url,
)
from models.events import (
    CarrierScan,
    ClockTick,
    ExceptionReason,
    OrderCancelled,
    OrderPlaced,
    OrderProcessing,
    PackageShipped,
    PackageStatus,
    RefundIssued,
    ReturnReceived,
    ReturnRequested,
    ServiceLevel,
    normalize_carrier,
)
from models.exception_reasons import CUSTOMER_WORDS, exception_reason
from models.feed_latency import FULFILLMENT, FeedLatency
from models.retention import expires_at, expiry_record, marker_expires_at
from models.state import AlertState, OrderState, OrderStatus, PackageState, TimelineEntry
from models.thresholds import Thresholds
from models.transit import (
    AFTERNOON_HOUR,
    ROUTE_HOURS,
    LaneModel,
    LaneModels,
    LaneModelsUpdated,
    TransitObserved,
    TransitStarted,
    carrier_misses,
    corrected_carrier_date,
    late_given_carrier_date,
    late_if_travelling_on,
    not_out_for_delivery_by,
    service_key,
)
from models.transit import estimate as lane_estimate

__all__ = ["OrderState", "OrderStatus", "PackageState", "apply", "apply_batch", "apply_in_place", "order_view"]

# Enough to absorb redelivery after a crash and webhook retries, small enough to keep
# state compact: older duplicates are still caught by the milestone and event-time rules.
SEEN_EVENTS_KEPT = 256
SCAN_ESTIMATES_KEPT = 48
TIMELINE_KEPT = 64
DEFAULT_RULES = Thresholds()
# The thresholds of the event being applied, for the few rules deep in the effect helpers.
_RULES_IN_FORCE: ContextVar[Thresholds] = ContextVar("rules_in_force", default=DEFAULT_RULES)
# The lane models in force at the event (models.transit); None: no model, carrier or promise only.
_MODELS_IN_FORCE: ContextVar[LaneModels | None] = ContextVar("models_in_force", default=None)

Event = (OrderPlaced | OrderProcessing | PackageShipped | OrderCancelled | ReturnRequested | ReturnReceived
         | RefundIssued | CarrierScan | ClockTick)

# What the customer hears when a delay rule fires (alerts of other kinds are for ops only).
DELAY_REASONS = {
    AlertKind.warehouse_delay: "Your order has not left the warehouse yet.",
    AlertKind.pickup_delay_2: "The carrier has not collected your package yet.",
    AlertKind.estimate_after_promise: "The carrier now expects to deliver after the promised date.",
    AlertKind.promise_missed: "Your order missed its promised delivery date.",
    AlertKind.out_for_delivery_overdue: "The carrier could not deliver today; it will try on the next delivery day.",
}
# Told only on the service levels a deployment lists in ``predicted_late_notice_levels`` (off by
# default): make quality must first measure predicted_late at 99% precision there.
PREDICTED_LATE_REASON = "Your package is likely to arrive after the promised date."
# An open predicted_late closes only once the probability fell this far below the threshold,
# so a package hovering at it does not open and close (with a new alert id) at every scan.
PREDICTED_LATE_CLOSE_MARGIN = 0.1
_FEEDBACK_MILESTONE = f":{NotificationType.feedback_request.value}"
ATTEMPT_FAILED_NEXT_STEP = ("The carrier will try again on the next delivery day, "
                            "or you can collect it from the pickup point named in the notice.")


def apply(state: OrderState | None, event: Event, rules: Thresholds = DEFAULT_RULES,
          latency: FeedLatency | None = None, models: LaneModels | None = None) -> tuple[OrderState, list[Effect]]:
    """Fold one event into the order's state; return the new state and its effects.

    The state given is left as it was.
    """
    state = OrderState(order_id=event.order_id) if state is None else copy_state(state)
    return state, apply_in_place(state, event, rules, latency, models)


def apply_in_place(state: OrderState, event: Event, rules: Thresholds = DEFAULT_RULES,
                   latency: FeedLatency | None = None, models: LaneModels | None = None) -> list[Effect]:
    """``apply`` for a state the caller owns and lets change: no copy on the hot path.

    ``latency`` (the feed delays seen so far) learns from every first-seen event and
    gives the allowance before a customer hears of a missed deadline. ``models`` are the
    lane models in force at this event (models.transit): our own estimate comes from them.
    """
    if state.expired_at is not None:
        return []  # removed by retention (the worker refuses later events)
    revision: CarrierScan | None = None
    if event.event_id in state.seen_event_ids or (isinstance(event, CarrierScan) and _scan_known(state, event)):
        revision = _estimate_revision(state, event)
        if revision is None:
            return []  # seen already
        event = revision
    _RULES_IN_FORCE.set(rules)
    _MODELS_IN_FORCE.set(models)
    state.seen_event_ids.append(event.event_id)
    if len(state.seen_event_ids) > SEEN_EVENTS_KEPT:
        del state.seen_event_ids[:-SEEN_EVENTS_KEPT]
    if isinstance(event, CarrierScan) and \
            event.occurred_at > event.ingested_at + timedelta(minutes=rules.future_tolerance_minutes):
        # A carrier clock gone wrong: the scan would hold its status against every real one.
        return [_event_record(event, detail="rejected: future")]
    if revision is not None:  # the estimate alone is news: no scan to record or to learn feed delays from
        revised: list[Effect] = []
        _on_carrier_estimate(state, state.packages[revision.package_id], revision, revised)
        return _after_event(state, revision, revised, rules, latency)
    if latency is not None and event.ingested_at is not None and not isinstance(event, ClockTick):
        # A fulfillment center's events are a feed of their own, like a carrier's.
        latency.observe(event.source if isinstance(event, CarrierScan) else FULFILLMENT,
                        event.carrier if isinstance(event, CarrierScan)
                        else getattr(event, "fulfillment_center", "") or state.fulfillment_center,
                        (event.ingested_at - event.occurred_at).total_seconds())
    effects: list[Effect] = [] if isinstance(event, ClockTick) else [_event_record(event)]
    if isinstance(event, OrderPlaced):
        _on_placed(state, event, effects)
    elif isinstance(event, OrderProcessing):
        state.processing_at = state.processing_at or event.occurred_at
    elif isinstance(event, PackageShipped):
        _on_shipped(state, event, effects)
    elif isinstance(event, OrderCancelled):
        state.cancelled_at = event.occurred_at
    elif isinstance(event, ReturnRequested):
        _on_return_requested(state, event, effects)
    elif isinstance(event, ReturnReceived):
        _on_return_received(state, event, effects)
    elif isinstance(event, RefundIssued):
        _on_refund(state, event, effects)
    elif isinstance(event, CarrierScan):
        _on_scan(state, event, effects, rules)
    return _after_event(state, event, effects, rules, latency)


def _after_event(state: OrderState, event: Event, effects: list[Effect], rules: Thresholds,
                 latency: FeedLatency | None) -> list[Effect]:
    """What every event is followed by: the order's status, the delay rules and estimates at
    the event's receipt time, feedback, the next deadline and retention."""
    _derive_order_status(state, event, effects)
    now = _ingested_at(event)
    _estimate_in_transit(state, event, now, rules, effects)
    _measure_silence(state)
    current = {c.key: c for c in conditions(state, rules)}
    allowance = _allowances(state, latency, rules)
    delays_told = _run_delay_rules(state, event, now, current, effects, allowance)
    _revise_estimates(state, event, effects, delays_told, now, rules)
    feedback = _ask_for_feedback(state, event, now, rules, effects)
    # The rules above leave conditions as they are.
    state.next_deadline = _next_deadline(state, current, feedback, allowance, now)
    expiry = expires_at(state, rules)
    if isinstance(event, ClockTick) and expiry is not None and expiry <= now:
        # The expiry moment, not the tick's: a replay removes it at the same point in event time.
        state.expired_at = expiry  # the worker stores a marker instead of the state
        state.next_deadline = marker_expires_at(expiry, rules)
        effects.append(expiry_record(state, expiry, now))
    elif expiry is not None:
        state.next_deadline = min(state.next_deadline or expiry, expiry)
    return effects


# --- fulfillment and order events -------------------------------------------------------

def _on_placed(state: OrderState, event: OrderPlaced, effects: list[Effect]) -> None:
    state.customer_id = event.customer_id
    state.seller_id = event.seller_id
    state.fulfillment_center = event.fulfillment_center
    state.service_level = event.service_level.value
    state.delivery_time_zone = event.delivery_time_zone
    if event.destination is not None:
        state.destination_region = event.destination.lane_region()
        state.destination_postal_prefix = event.destination.postal_prefix()
    state.promised_delivery_date = event.promised_delivery_date
    state.ship_by = event.ship_by
    state.placed_at = event.occurred_at
    state.ordered_skus = sorted({item.sku for item in event.items})
    for package in state.outbound():  # packages announced before the order: estimate now
        _refresh_estimate(state, package, event, effects)
        if package.shipped_at or package.accepted_at:  # its lane was not known at the hand-over
            _transit_started(state, package, effects, _ingested_at(event))
    if state.cancelled_at is None:
        _notify(state, effects, NotificationType.order_confirmed, event, package=None,
                estimated_delivery=event.promised_delivery_date)
        _notify(state, effects, NotificationType.estimate_set, event, package=None,
                estimated_delivery=event.promised_delivery_date)
    # What was decided before the order was known goes out now, addressed to its customer.
    effects.extend(command.model_copy(update={"customer_id": state.customer_id})
                   for command in state.waiting_for_order)
    state.waiting_for_order = []


def _on_shipped(state: OrderState, event: PackageShipped, effects: list[Effect]) -> None:
    package = state.packages.get(event.package_id) or PackageState(package_id=event.package_id)
    package.carrier = normalize_carrier(event.carrier)
    package.tracking_number = event.tracking_number
    package.service = event.service
    package.skus = list(event.skus)
    first_hand_over = package.shipped_at is None and package.accepted_at is None
    package.shipped_at = event.occurred_at
    state.packages[event.package_id] = package
    if first_hand_over:
        _transit_started(state, package, effects, _ingested_at(event))
    # The shipped notice gives the date: our model's from today, where it has one.
    _model_estimate(state, package, _MODELS_IN_FORCE.get(), min(event.occurred_at, _ingested_at(event)),
                    _ingested_at(event), _RULES_IN_FORCE.get())
    _refresh_estimate(state, package, event, effects)
    package.notified_estimate = package.notified_estimate or package.estimated_delivery
    effects.append(_shipment_record(state, package, "shipped", event))
    effects.append(TrackingLink(
        carrier=package.carrier, tracking_number=event.tracking_number,
        order_id=event.order_id, package_id=event.package_id, announced_at=event.occurred_at,
    ))
    _notify(state, effects, NotificationType.shipped, event, package=package,
            estimated_delivery=package.estimated_delivery)


def _on_return_requested(state: OrderState, event: ReturnRequested, effects: list[Effect]) -> None:
    state.return_requested_at = state.return_requested_at or event.occurred_at
    package = state.packages.get(event.return_id) or PackageState(package_id=event.return_id, is_return=True)
    package.is_return = True
    package.skus = list(event.skus)
    package.shipped_at = package.shipped_at or event.occurred_at
    if event.tracking_number:
        package.carrier = normalize_carrier(event.carrier)
        package.tracking_number = event.tracking_number
        # The return label's scans reach this order like any other package's.
        effects.append(TrackingLink(carrier=package.carrier, tracking_number=event.tracking_number,
                                    order_id=event.order_id, package_id=event.return_id,
                                    announced_at=event.occurred_at))
    state.packages[event.return_id] = package
    _notify(state, effects, NotificationType.return_started, event, package=package, reason=event.reason)


def _on_return_received(state: OrderState, event: ReturnReceived, effects: list[Effect]) -> None:
    package = state.packages.get(event.return_id) or PackageState(package_id=event.return_id, is_return=True)
    state.packages[event.return_id] = package
    state.return_requested_at = state.return_requested_at or event.occurred_at
    package.delivered_at = package.delivered_at or event.occurred_at
    _notify(state, effects, NotificationType.return_received, event, package=package)


def _on_refund(state: OrderState, event: RefundIssued, effects: list[Effect]) -> None:
    state.refunded_at = state.refunded_at or event.occurred_at
    _notify(state, effects, NotificationType.refund_issued, event, package=None, instance=event.return_id,
            refund_amount=event.amount, refund_currency=event.currency)


# --- carrier scans ----------------------------------------------------------------------

def _on_scan(state: OrderState, event: CarrierScan, effects: list[Effect], rules: Thresholds) -> None:
    package = state.packages.get(event.package_id)
    if package is None:  # the router only forwards matched scans, but stay total
        package = PackageState(package_id=event.package_id or event.tracking_number,
                               carrier=event.carrier, tracking_number=event.tracking_number)
        state.packages[package.package_id] = package
    entry = TimelineEntry(status=event.status, raw_code=event.raw_code, message=event.raw_message,
                          location=event.location, occurred_at=event.occurred_at, event_id=event.event_id)
    insort(package.timeline, entry, key=_event_time)  # scans arrive nearly in order: cheap
    if len(package.timeline) > TIMELINE_KEPT:
        del package.timeline[:-TIMELINE_KEPT]
    newest = package.last_scan_at is None or event.occurred_at >= package.last_scan_at
    if package.last_scan_at is None or event.occurred_at > package.last_scan_at:
        # A later scan ends the silence: the stale rule's measure as of now (a scan of the same
        # moment from another feed ends none, and leaves an open alert's measure as it is).
        models = _MODELS_IN_FORCE.get()
        package.usual_silence_hours = (None if models is None
                                       else models.usual_silence_hours(package.carrier, state.service_level))
    if newest:
        package.last_scan_at = event.occurred_at
        package.scan_source = event.source
        package.scan_delay_seconds = max(0.0, (event.ingested_at - event.occurred_at).total_seconds())
    hand_over = False
    if event.status not in NOT_ACCEPTED and package.accepted_at is None:
        package.accepted_at = event.occurred_at
        hand_over = package.shipped_at is None  # no shipment event (yet): the carrier's scan says it left
    if hand_over and (event.estimated_delivery is None or package.carrier_original_estimate):
        _transit_started(state, package, effects, event.ingested_at)
    if event.estimated_delivery is not None:  # a first date with the hand-over: one record, there
        _on_carrier_estimate(state, package, event, effects, hand_over)
    if event.status in (PackageStatus.delivered, PackageStatus.attempt_failed):
        package.first_attempt_at = min(filter(None, [package.first_attempt_at, event.occurred_at]))
    if event.status is PackageStatus.delivered and package.delivered_at is None:
        package.delivered_at = event.occurred_at
        if not package.is_return:
            effects.append(_shipment_record(state, package, "delivered", event))
            observed = _transit_observed(state, package)
            if observed is not None:
                effects.append(observed)
    # Event time decides: an older scan that arrives late joins the timeline only.
    if package.status_at is None or event.occurred_at >= package.status_at:
        previous = package.status
        if event.status is not PackageStatus.unknown:
            package.status = event.status
            package.status_at = event.occurred_at
            package.status_seen_at = event.ingested_at
            if event.status is PackageStatus.out_for_delivery:
                package.out_for_delivery_at = event.occurred_at
            if event.status in (PackageStatus.exception, PackageStatus.returning_to_sender,
                                PackageStatus.returned_to_sender):
                package.exception_reason = (ExceptionReason.returned_to_sender.value
                                            if event.status is not PackageStatus.exception
                                            else (event.action_reason
                                                  or exception_reason(event.raw_code, event.raw_message)).value)
        if package.status is not previous:
            effects.append(_transition(event, package.package_id, package.status, previous))
    if package.is_return:
        _on_return_scan(state, package, event, effects)
    else:
        _tell_customer_about_scan(state, package, event, effects, rules)


def _on_carrier_estimate(state: OrderState, package: PackageState, event: CarrierScan, effects: list[Effect],
                         hand_over: bool = False) -> None:
    """``hand_over``: this scan is the package's hand-over, not reported yet."""
    assert event.estimated_delivery is not None
    first = package.carrier_original_estimate is None
    package.carrier_original_estimate = package.carrier_original_estimate or event.estimated_delivery
    if first and (package.shipped_at or package.accepted_at):  # a young level learns its usual date
        _transit_started(state, package, effects, event.ingested_at, dated_later=not hand_over)
    # The estimate given with the newest scan is the carrier's current one (event time).
    if package.carrier_estimate_at is None or event.occurred_at >= package.carrier_estimate_at:
        if package.carrier_current_estimate != event.estimated_delivery:
            package.carrier_corrected_estimate = None  # moved from the old date: moved again once estimated
        package.carrier_current_estimate = event.estimated_delivery
        package.carrier_estimate_at = event.occurred_at
        package.estimate_seen_at = event.ingested_at
    # As of this scan: a notice may carry the date (a delivered package is estimated no more).
    if (models := _MODELS_IN_FORCE.get()) is not None and package.delivered_at is None \
            and event.status is not PackageStatus.delivered:
        _model_estimate(state, package, models, min(event.occurred_at, _ingested_at(event)), _ingested_at(event),
                        _RULES_IN_FORCE.get())
    _refresh_estimate(state, package, event, effects)


def _estimate_revision(state: OrderState, event: Event) -> CarrierScan | None:
    """A scan applied already, resent with another carrier estimate: the estimate is news.

    Carriers resend the whole history when only the tracker's estimate changed (EasyPost's
    ``est_delivery_date``): without this, a revised date with no new scan would be lost. Only
    the package's newest scan counts (an older one's estimate is older). The revision is an
    event of its own, its id from the scan's, the date and the receipt time: a replay gives
    the same id (and is dropped as seen), a carrier going back to an earlier date is news again.
    """
    if not isinstance(event, CarrierScan) or event.estimated_delivery is None or event.ingested_at is None:
        return None
    package = state.packages.get(event.package_id)
    if (package is None or package.delivered_at is not None
            or package.carrier_current_estimate == event.estimated_delivery
            or package.last_scan_at is None or event.occurred_at < package.last_scan_at):
        return None
    revision = event.model_copy(update={"event_id": stable_id(
        event.event_id, "estimate", event.estimated_delivery.isoformat(), event.ingested_at.isoformat())})
    return None if revision.event_id in state.seen_event_ids else revision


def _scan_known(state: OrderState, scan: CarrierScan) -> bool:
    """A scan already applied, past the window of recent ids: the package's timeline holds it, or
    the timeline is full and the scan is older than all it keeps (carriers resend whole
    histories; a journey longer than the timeline must not replay its first scans)."""
    package = state.packages.get(scan.package_id)
    if package is None or not package.timeline:
        return False
    if any(entry.event_id == scan.event_id for entry in package.timeline):
        return True
    return len(package.timeline) >= TIMELINE_KEPT and scan.occurred_at < package.timeline[0].occurred_at


def _tell_customer_about_scan(state: OrderState, package: PackageState, event: CarrierScan,
                              effects: list[Effect], rules: Thresholds) -> None:
    status = event.status
    if status is PackageStatus.delivered:
        where = ", ".join(part for part in (event.raw_message, event.location) if part)
        _notify(state, effects, NotificationType.delivered, event, package=package, location=where)
        return
    if package.delivered_at is not None:
        return  # a late scan from before delivery: the customer has moved on
    if event.action_reason is not None:
        # Whatever the main status says, the carrier needs the customer (or explains a failed
        # attempt): one exception update per reason, its id from the reason.
        reason = event.action_reason
        _notify(state, effects, NotificationType.exception, event, package=package, instance=reason.value,
                reason=reason.value, next_step=CUSTOMER_WORDS[reason][1], location=event.location)
    if status is PackageStatus.out_for_delivery:
        _notify(state, effects, NotificationType.out_for_delivery, event, package=package,
                estimated_delivery=package.estimated_delivery)
    elif status is PackageStatus.attempt_failed:
        # The customer hears why, in words, when the carrier says why.
        why = CUSTOMER_WORDS[event.action_reason][0] if event.action_reason else event.raw_message
        _notify(state, effects, NotificationType.attempt_failed, event, package=package,
                instance=event.occurred_at.date().isoformat(), reason=why,
                next_step=ATTEMPT_FAILED_NEXT_STEP, location=event.location)
    elif status is PackageStatus.available_for_pickup:
        hold = timedelta(days=rules.level(state.service_level).pickup_hold_days)
        package.pickup_location = event.location or event.raw_message
        package.pickup_code = event.pickup_code
        package.pickup_deadline = event.pickup_deadline or event.occurred_at + hold
        _notify(state, effects, NotificationType.ready_for_pickup, event, package=package,
                location=package.pickup_location, pickup_code=package.pickup_code,
                pickup_deadline=package.pickup_deadline)


def _on_return_scan(state: OrderState, package: PackageState, event: CarrierScan,
                    effects: list[Effect]) -> None:
    if event.status is PackageStatus.delivered:
        _notify(state, effects, NotificationType.return_received, event, package=package)
    elif event.status not in NOT_ACCEPTED and package.delivered_at is None:
        _notify(state, effects, NotificationType.return_in_transit, event, package=package)


# --- order status -----------------------------------------------------------------------

def _derive_order_status(state: OrderState, event: Event, effects: list[Effect]) -> None:
    previous = state.status
    packages = state.outbound()
    returns = state.returns()
    delivered = sum(1 for p in packages if p.delivered_at is not None)
    if state.refunded_at is not None:
        state.status = OrderStatus.refunded
    elif returns and all(r.delivered_at is not None for r in returns):
        state.status = OrderStatus.returned
    elif returns or state.return_requested_at is not None:
        state.status = OrderStatus.return_requested
    elif state.cancelled_at is not None and delivered == 0:
        state.status = OrderStatus.cancelled
    elif packages and delivered == len(packages) and state.all_items_shipped():
        state.status = OrderStatus.delivered  # not while items the customer ordered have not shipped
    elif delivered:
        state.status = OrderStatus.partially_delivered
    elif packages:
        state.status = OrderStatus.shipped if state.all_items_shipped() else OrderStatus.partially_shipped
    elif state.processing_at is not None:
        state.status = OrderStatus.processing
    else:
        state.status = OrderStatus.placed
    if state.status is not previous:
        effects.append(_transition(event, "", state.status, previous))


# --- estimates, delays, feedback ----------------------------------------------------------

def _refresh_estimate(state: OrderState, package: PackageState, event: Event, effects: list[Effect]) -> None:
    """The date the customer is shown: our model's where it was measured more accurate than
    the carrier on this lane (or the carrier gave none), else the carrier's (moved by its
    measured usual miss where one is), else (no model yet) the carrier's usual date for such
    packages, else the promise.

    Each change is a history row, so estimates can be followed over time.
    """
    before = (package.estimated_delivery, package.estimate_source)
    model_before = package.model_estimate_recorded
    package.estimate_confidence = None
    if package.model_estimate is not None and (package.model_preferred or package.carrier_current_estimate is None):
        package.estimated_delivery, package.estimate_source = package.model_estimate, "model"
        package.estimate_confidence = package.model_confidence
    elif package.carrier_corrected_estimate is not None:  # the carrier's date, less its usual miss
        package.estimated_delivery, package.estimate_source = package.carrier_corrected_estimate, "carrier_corrected"
    elif package.carrier_current_estimate is not None:
        package.estimated_delivery, package.estimate_source = package.carrier_current_estimate, "carrier"
    elif package.carrier_typical_estimate is not None:  # no model yet: closer than a padded promise
        package.estimated_delivery, package.estimate_source = package.carrier_typical_estimate, "carrier_typical"
    elif state.promised_delivery_date is not None:
        package.estimated_delivery, package.estimate_source = state.promised_delivery_date, "promise"
    # A row when the date shown changes, or our model's date does (measured by make quality).
    package.model_estimate_recorded = package.model_estimate
    if ((package.estimated_delivery, package.estimate_source) != before or package.model_estimate != model_before) \
            and package.estimated_delivery:
        effects.append(HistoryRecord(
            # One event may change the date twice (the carrier's, then the model's): one row each.
            record_id=stable_id(event.event_id, "estimate", package.package_id, package.estimated_delivery.isoformat(),
                                package.estimate_source, str(package.model_estimate)), record_type="estimate",
            order_id=state.order_id, package_id=package.package_id, event_id=event.event_id,
            carrier=package.carrier, tracking_number=package.tracking_number, status=package.estimate_source,
            detail=package.estimated_delivery.isoformat(), occurred_at=event.occurred_at,
            ingested_at=_ingested_at(event), attributes=_dates(
                estimate=package.estimated_delivery, previous=before[0], promised=state.promised_delivery_date,
                carrier_original=package.carrier_original_estimate,
                carrier_current=package.carrier_current_estimate, model=package.model_estimate)
            | ({"model_key": package.model_key, "confidence": f"{package.model_confidence:.3f}"}
               if package.model_confidence is not None else {})))


def _estimate_in_transit(state: OrderState, event: Event, now: datetime, rules: Thresholds,
                         effects: list[Effect]) -> None:
    """Our model's estimate for the packages the event concerns, and the choice of the date
    the customer is shown. A scan records what each source said, to measure them at delivery.

    Time in transit is counted to the event's own time (a tick's is the watermark), not its
    receipt: a backlog of old scans read at once must not look days longer on the road than
    it was when scanned. Nothing to do without models (own estimate off, or the oracle)."""
    models = _MODELS_IN_FORCE.get()
    if models is None:
        return
    if isinstance(event, CarrierScan):
        package = state.packages.get(event.package_id)
        packages = [package] if package is not None and not package.is_return else []
    else:
        packages = state.outbound()
    moment = min(event.occurred_at, now)  # and a carrier clock running ahead does not push it on
    for package in packages:
        if package.delivered_at is not None:
            continue
        _model_estimate(state, package, models, moment, now, rules)
        _refresh_estimate(state, package, event, effects)
        today = local_date(moment, state.delivery_time_zone)
        if isinstance(event, CarrierScan) and today is not None and len(package.scan_estimates) < SCAN_ESTIMATES_KEPT:
            package.scan_estimates.append((today, package.carrier_current_estimate, package.model_estimate))


def _model_estimate(state: OrderState, package: PackageState, models: LaneModels | None, moment: datetime,
                    now: datetime, rules: Thresholds) -> None:
    """``moment``: the event time the package's time in transit counts to; ``now``: its receipt
    (a predicted_late opens only while the promised day is not over then)."""
    handed_over = local_date(package.shipped_at or package.accepted_at, state.delivery_time_zone)
    model = _lane_model(state, package, models, rules) if models is not None and handed_over else None
    today = local_date(moment, state.delivery_time_zone) or handed_over
    found = lane_estimate(model, handed_over, today, state.promised_delivery_date, package.carrier_current_estimate,
                          _handed_over_afternoon(state, package)) \
        if model is not None and handed_over and today else None
    # The carrier's date moved by its measured usual miss (the lane's model's, else the carrier's
    # on the level however young): shown where the carrier's date is, unless the model's is.
    package.carrier_corrected_estimate = corrected_carrier_date(
        model if model is not None else models.service_model(package.carrier, state.service_level),
        package.carrier_current_estimate, today, state.promised_delivery_date, models.over_levels(package.carrier)) \
        if models is not None and today and package.carrier_current_estimate is not None else None
    # Before its lane or carrier has a model: the carrier's usual date on the level.
    package.carrier_typical_estimate = models.carrier_typical(
        package.carrier, state.service_level, handed_over, today, state.promised_delivery_date) \
        if model is None and models is not None and handed_over and today else None
    if found is None:  # no model yet, or the package took longer than any delivery it knows
        package.model_estimate = package.model_confidence = package.late_probability = None
        package.model_key, package.model_preferred = "", False
        if model is None:
            package.predicted_late_since = package.not_out_for_delivery_by = None
        elif state.promised_delivery_date is not None and _out_for_delivery_since(
                package, state.promised_delivery_date, state.delivery_time_zone):
            package.not_out_for_delivery_by = None  # the route left, however late
        # else it outlasted every delivery its lane knows: no recovery, an open predicted_late
        # stays open (it closed, and opened again under a new id once longer deliveries came)
        return
    assert model is not None
    package.model_estimate, package.model_confidence = found.estimate, round(found.confidence, 3)
    package.model_key, package.model_preferred = found.key, model.prefers_model()
    # With the carrier's date, the lane's history weighed by how that carrier's dates missed
    # (as the customer's delay notice is); without, the history alone.
    threshold = rules.late_threshold(state.service_level)
    weighed = _late_given_carrier_date(state, package, model, now)
    if weighed is None and models is not None:
        # At the longest lead, where this level has not measured the carrier's dates yet, its
        # misses over all its levels may raise ops' alert, never lower it: a close decided by
        # them would reopen under a new id once the lead shortens to one the level has not
        # measured either. The customer's notice waits for the level's (_carrier_date_likely_late).
        wider = _late_given_carrier_date(state, package, model, now, models.over_levels(package.carrier))
        weighed = wider if wider is not None and wider >= threshold else None
    late = weighed if weighed is not None else found.late_probability
    package.late_probability = None if late is None else round(late, 3)
    promise_end = (end_of_local_day(state.promised_delivery_date, state.delivery_time_zone)
                   if state.promised_delivery_date else None)
    # Likely late, and our own date says so too (a corrected carrier date within the promise
    # outweighs the lane's history).
    if package.late_probability is not None and package.late_probability >= threshold \
            and state.promised_delivery_date is not None and found.estimate > state.promised_delivery_date:
        if package.predicted_late_since is None and promise_end is not None and now < promise_end:
            package.predicted_late_since = moment  # still time to act: ops hear now
    elif promise_end is None:
        package.predicted_late_since = None
    elif now < promise_end and not _late_date_unweighed(state, package, weighed) \
            and (package.late_probability is None or state.promised_delivery_date is None
                 or found.estimate <= state.promised_delivery_date
                 or package.late_probability < threshold - PREDICTED_LATE_CLOSE_MARGIN):
        package.predicted_late_since = None  # recovered; one hovering at the threshold stays open
    _route_deadline(state, package, model, now, rules)


# A package the carrier still moves toward the customer: the route rule asks when it leaves.
_ON_THE_ROAD = {PackageStatus.info_received, PackageStatus.picked_up, PackageStatus.in_transit,
                PackageStatus.exception, PackageStatus.unknown}


def _route_deadline(state: OrderState, package: PackageState, model: LaneModel, now: datetime,
                    rules: Thresholds) -> None:
    """When, on the promised day, a package not out for delivery yet becomes likely late: the
    carrier's routes leave in the morning (models.transit.not_out_for_delivery_by). Cleared by
    an out-for-delivery scan on or after that day; not set once the promised day is over
    (``now``, the receipt: no time left to act), and kept as it was then."""
    promised, zone = state.promised_delivery_date, state.delivery_time_zone
    if promised is None or package.status not in _ON_THE_ROAD or _out_for_delivery_since(package, promised, zone):
        package.not_out_for_delivery_by = None
        return
    if now >= end_of_local_day(promised, zone):
        return
    if package.not_out_for_delivery_by is not None and package.not_out_for_delivery_by <= now:
        return  # passed: its alert stays until the route leaves, not moved by the next scan's odds
    handed_over = local_date(package.shipped_at or package.accepted_at, zone)
    if handed_over is None:
        package.not_out_for_delivery_by = None
        return
    hour = _route_rule_hour(tuple(model.transit_days_for(_handed_over_afternoon(state, package))),
                            model.working_weekdays, tuple(model.out_for_delivery_hours), handed_over, promised,
                            rules.predicted_late_route_probability, rules.lane_model_min_deliveries)
    package.not_out_for_delivery_by = None if hour is None else local_moment(promised, hour, zone)


@lru_cache(maxsize=4096)
def _route_rule_hour(transit_days: tuple[float, ...], weekdays: tuple[int, ...], routes: tuple[float, ...],
                     handed_over: date, promised: date, threshold: float, min_deliveries: int) -> int | None:
    """``not_out_for_delivery_by`` with its prior, kept for the inputs it depends on: every event
    asks again, and a lane's histograms change only with its deliveries."""
    model = LaneModel(key="", version=0, transit_days=list(transit_days), working_weekdays=weekdays,
                      out_for_delivery_hours=list(routes))
    late = late_if_travelling_on(model, handed_over, promised)
    return None if late is None else not_out_for_delivery_by(model, late, threshold, min_deliveries)


def _late_date_unweighed(state: OrderState, package: PackageState, weighed: float | None) -> bool:
    """The carrier's date past the promise still stands, at a lead its misses have not measured:
    the history alone (far lower) says nothing of a recovery, so an open predicted_late stays
    open instead of closing and opening again under a new id as the lead shortens day by day."""
    promised, carrier_date = state.promised_delivery_date, package.carrier_current_estimate
    return weighed is None and promised is not None and carrier_date is not None and carrier_date > promised


def _measure_silence(state: OrderState) -> None:
    """The stale rule's measure for each package: its carrier's usual silence on the level in
    the models in force now (a young key's grows as its slow packages come back), except while
    the package's stale alert is open: that keeps the deadline it opened at until a scan ends
    the silence, so a new model version neither moves it nor closes and reopens it."""
    models = _MODELS_IN_FORCE.get()
    if models is None:
        return
    for package in state.outbound():
        known = state.alerts.get(alert_key(AlertKind.in_transit_stale, package.package_id))
        if known is None or known.closed_at is not None:
            package.usual_silence_hours = models.usual_silence_hours(package.carrier, state.service_level)


def _lane_model(state: OrderState, package: PackageState, models: LaneModels, rules: Thresholds) -> LaneModel | None:
    return models.for_lane(package.carrier, state.service_level, state.fulfillment_center, state.destination_region,
                           rules.lane_model_min_deliveries)


def _longest_silence_hours(package: PackageState) -> float:
    """The longest time between two scans after the carrier accepted the package."""
    accepted = package.accepted_at
    scans = [e for e in package.timeline if accepted is not None and e.occurred_at >= accepted]
    # Waiting at a pickup point is not silence (presumed_lost does not run then either).
    return max(((later.occurred_at - earlier.occurred_at).total_seconds() / 3600
                for earlier, later in pairwise(scans) if earlier.status is not PackageStatus.available_for_pickup),
               default=0.0)


def _out_for_delivery_since(package: PackageState, day: date, zone: str) -> bool:
    """Out for delivery on ``day`` or later (local), by any scan, also one that arrived after a
    newer scan (it did not set the status)."""
    return any(e.status is PackageStatus.out_for_delivery and (local_date(e.occurred_at, zone) or day) >= day
               for e in package.timeline)


def _route_hour(package: PackageState, delivered: date, zone: str) -> int:
    """The local hour of the out-for-delivery scan on the delivery day; ROUTE_HOURS: none then."""
    hours = [local_hour(e.occurred_at, zone) for e in package.timeline
             if e.status is PackageStatus.out_for_delivery and local_date(e.occurred_at, zone) == delivered]
    return min(hours, default=ROUTE_HOURS)


def _handed_over_afternoon(state: OrderState, package: PackageState) -> bool | None:
    handed_over = package.shipped_at or package.accepted_at
    if handed_over is None:
        return None
    return local_hour(handed_over, state.delivery_time_zone) >= AFTERNOON_HOUR


def _transit_started(state: OrderState, package: PackageState, effects: list[Effect], received: datetime,
                     dated_later: bool = False) -> None:
    """A package handed to its carrier, for the young lanes' models to count as travelling
    (models.transit, Kaplan-Meier); once per package, at its first hand-over (or once its
    order says which lane it is on), and once more (``dated_later``) when its carrier first
    dates it after that (a young level's usual carrier date, ``carrier_typical``). A clock
    running ahead does not date it after its receipt: the lane agent counts every package's
    time on the road to the newest date it saw."""
    when = package.shipped_at or package.accepted_at
    handed_over = local_date(min(when, received) if when else None, state.delivery_time_zone)
    if handed_over is None or package.is_return or not state.service_level or not package.carrier:
        return
    effects.append(TransitStarted(
        package_id=package.package_id, order_id=state.order_id, carrier=package.carrier,
        service_level=state.service_level, origin=state.fulfillment_center,
        destination_region=state.destination_region, handed_over=handed_over,
        handed_over_afternoon=_handed_over_afternoon(state, package),
        carrier_date=package.carrier_original_estimate, dated_later=dated_later))


def _transit_observed(state: OrderState, package: PackageState) -> TransitObserved | None:
    """A delivered package as an observation for its lane's model, with how far off the
    carrier's and the model's dates were at its scans."""
    zone = state.delivery_time_zone
    handed_over = local_date(package.shipped_at or package.accepted_at, zone)
    delivered = local_date(package.delivered_at, zone)
    if handed_over is None or delivered is None or not state.service_level or not package.carrier:
        return None
    pairs = [(c, m) for _, c, m in package.scan_estimates if c is not None and m is not None]
    return TransitObserved(
        package_id=package.package_id, order_id=state.order_id, carrier=package.carrier,
        service_level=state.service_level, origin=state.fulfillment_center,
        destination_region=state.destination_region, handed_over=handed_over, delivered=delivered,
        handed_over_afternoon=_handed_over_afternoon(state, package),
        longest_silence_hours=_longest_silence_hours(package),
        out_for_delivery_hour=_route_hour(package, delivered, zone),
        carrier_error_days=float(sum(abs((c - delivered).days) for c, _ in pairs)),
        model_error_days=float(sum(abs((m - delivered).days) for _, m in pairs)), compared=len(pairs),
        carrier_misses=carrier_misses([(day, c) for day, c, _ in package.scan_estimates if c is not None], delivered))


def _dates(**values: date | datetime | None) -> dict[str, str]:
    return {name: value.isoformat() for name, value in values.items() if value is not None}


def _shipment_record(state: OrderState, package: PackageState, milestone: str, event: Event) -> HistoryRecord:
    """The facts about one package the carrier and seller dashboards are computed from."""
    return HistoryRecord(
        record_id=stable_id(state.order_id, package.package_id, "shipment", milestone), record_type="shipment",
        order_id=state.order_id, package_id=package.package_id, event_id=event.event_id, carrier=package.carrier,
        tracking_number=package.tracking_number, status=milestone, occurred_at=event.occurred_at,
        ingested_at=_ingested_at(event),
        attributes={"seller_id": state.seller_id, "fulfillment_center": state.fulfillment_center,
                    "service_level": state.service_level, "delivery_time_zone": state.delivery_time_zone,
                    "destination_region": state.destination_region,
                    **_dates(placed_at=state.placed_at, ship_by=state.ship_by, shipped_at=package.shipped_at,
                             accepted_at=package.accepted_at, first_attempt_at=package.first_attempt_at,
                             delivered_at=package.delivered_at, promised=state.promised_delivery_date,
                             carrier_original_estimate=package.carrier_original_estimate,
                             # On time is judged on the customer's calendar, not UTC's.
                             first_attempt_date=local_date(package.first_attempt_at, state.delivery_time_zone),
                             delivered_date=local_date(package.delivered_at, state.delivery_time_zone))})


def _run_delay_rules(state: OrderState, event: Event, now: datetime, current: dict[str, Condition],
                     effects: list[Effect], allowance: Callable[[Condition], timedelta]) -> set[str]:
    """Open alerts whose deadline passed, close those that cleared; returns packages told of a delay.

    A deadline opens only on a tick (``now`` is then the watermark) and its customer notice
    waits for the feed's allowance; a finding opens, and is told, on its event.
    """
    for key, alert in state.alerts.items():
        condition = current.get(key)
        if alert.closed_at is None and (condition is None or condition.due_at > now):
            alert.closed_at = now
            effects.extend(_alert_effects(state, alert, "closed", now))
    told: set[str] = set()
    ticked = isinstance(event, ClockTick)
    for key, condition in current.items():
        # The promised morning's route rule is a deadline whose feed may still show the route
        # left: it opens only after the feed's allowance, for ops and customer alike.
        route = _from_route(state, condition)
        if condition.due_at + (allowance(condition) if route else _NO_WAIT) > now:
            continue
        deadline = route or condition.kind in DEADLINE_KINDS
        if deadline and not ticked:
            continue
        known = state.alerts.get(key)
        if known is None or (known.closed_at is not None and known.due_at != condition.due_at):
            alert = state.alerts[key] = AlertState(alert_kind=condition.kind, package_id=condition.package_id,
                                                   due_at=condition.due_at, opened_at=now, detail=condition.detail)
            effects.extend(_alert_effects(state, alert, "open", now))
        elif known.closed_at is not None or (not deadline and not _held(state, condition, now)):
            continue  # closed for this very deadline, or a finding already told
        if deadline and not route and _notice_due(state, key, condition, allowance) > now:
            continue  # a late record may still show the deadline was met: wait to tell the customer
        if _tell_customer_about_alert(state, condition, event, now, effects):
            told.add(condition.package_id)
    if ticked:
        told |= _tell_route_rule(state, event, now, current, effects, allowance)
    return told


def _tell_route_rule(state: OrderState, event: Event, now: datetime, current: dict[str, Condition],
                     effects: list[Effect], allowance: Callable[[Condition], timedelta]) -> set[str]:
    """On the levels a deployment lists in ``predicted_late_route_notice_levels``: the customer
    hears once that the package is likely late when the route rule holds (its hour and the
    feed's allowance passed, the promised day not over), whichever rule opened ops' alert."""
    told: set[str] = set()
    for condition, notice_at in _route_notices_due(state, current, allowance):
        if notice_at <= now < _promise_end(state) \
                and _tell_customer_about_alert(state, condition, event, now, effects, route_rule=True):
            told.add(condition.package_id)
    return told


def _promise_end(state: OrderState) -> datetime:
    promised = state.promised_delivery_date
    return end_of_local_day(promised, state.delivery_time_zone) if promised else datetime.max.replace(tzinfo=UTC)


def _route_notices_due(state: OrderState, current: dict[str, Condition],
                       allowance: Callable[[Condition], timedelta]) -> list[tuple[Condition, datetime]]:
    """The route rule's customer notices not yet given: each as the condition due at the
    route hour, and when it may be told (that hour plus the feed's allowance)."""
    if state.promised_delivery_date is None \
            or state.service_level not in _RULES_IN_FORCE.get().predicted_late_route_notice_levels:
        return []
    due = []
    for condition in current.values():
        package = state.packages.get(condition.package_id)
        if condition.kind is AlertKind.predicted_late and package is not None \
                and package.not_out_for_delivery_by is not None \
                and _notice_milestone(condition) not in state.notified:
            route = condition._replace(due_at=package.not_out_for_delivery_by)
            due.append((route, route.due_at + allowance(route)))
    return due


def _allowances(state: OrderState, latency: FeedLatency | None, rules: Thresholds
                ) -> Callable[[Condition], timedelta]:
    """The feed-latency allowance of each condition: the feed that could still disprove it."""
    if latency is None:
        latency = FeedLatency(rules)  # nothing measured: the configured starting value

    def allowance(condition: Condition) -> timedelta:
        package = state.packages.get(condition.package_id) if condition.package_id else None
        if package is None:  # the fulfillment center's feed: its events could still show a shipment
            return latency.allowance(FULFILLMENT, state.fulfillment_center)
        # The feed's p99, or how late this package's own newest scan came if that is later
        # (a feed seen late here before enough of it was measured), within the cap.
        own = min(timedelta(seconds=package.scan_delay_seconds), timedelta(minutes=rules.feed_allowance_cap_minutes))
        return max(latency.allowance(package.scan_source, package.carrier), own)

    return allowance


def _notice_due(state: OrderState, key: str, condition: Condition,
                allowance: Callable[[Condition], timedelta]) -> datetime:
    """When the customer may hear of a missed deadline: one allowance after the deadline, or
    after trackline learned it was past (a backlog, a burst), whichever is later."""
    known = state.alerts.get(key)
    opened = known.opened_at if known is not None and known.closed_at is None else condition.due_at
    return max(condition.due_at, opened, _lost_notice_due(state, condition)) + allowance(condition)


def _lost_notice_due(state: OrderState, condition: Condition) -> datetime:
    """A customer hears "lost" only after the level's minimum silence, and after a silence
    longer than any a delivered package of the same carrier came back from, on any service
    level (a silence is the carrier's network, not the speed it sold; models.transit); ops
    hear presumed_lost at the threshold as before. Event time: silence from the last scan."""
    package = state.packages.get(condition.package_id)
    if condition.kind is not AlertKind.presumed_lost or package is None or package.last_scan_at is None:
        return condition.due_at
    level = _RULES_IN_FORCE.get().level(state.service_level)
    silence = level.lost_notice_min_hours or 0.0
    models = _MODELS_IN_FORCE.get()
    longest = None if models is None else _carrier_longest_silence(models, package.carrier, state.service_level)
    if longest is not None:
        # At most twice the lost threshold: one odd package (a feed gap) must not silence "lost".
        silence = max(silence, min(longest, 2 * level.lost_after_hours))
    return max(condition.due_at, package.last_scan_at + timedelta(hours=silence))


def _carrier_longest_silence(models: LaneModels, carrier: str, own_level: str) -> float | None:
    """The longest silence a delivered package of this carrier came back from, over every
    service level's model (each holds every lane's deliveries on its level)."""
    levels = {level.value for level in ServiceLevel} | {own_level}
    return max((found.longest_silence_hours for level in levels
                if (found := models.models.get(service_key(carrier, level))) is not None
                and found.longest_silence_hours is not None), default=None)


def _held(state: OrderState, condition: Condition, now: datetime) -> bool:
    """An open estimate_after_promise whose customer notice waits for the carrier's date to be
    likely late enough; asked again at each event until the promised day is over."""
    return (condition.kind is AlertKind.estimate_after_promise and state.promised_delivery_date is not None
            and now < _promise_end(state) and _notice_milestone(condition) not in state.notified)


def _late_date_held(state: OrderState, package: PackageState) -> bool:
    """The package's estimate_after_promise is open and its customer notice still held."""
    milestone = _delay_milestone(package.package_id, AlertKind.estimate_after_promise)
    return milestone not in state.notified and any(
        a.alert_kind is AlertKind.estimate_after_promise and a.package_id == package.package_id
        and a.closed_at is None for a in state.alerts.values())


def _carrier_date_likely_late(state: OrderState, package: PackageState, now: datetime) -> bool:
    """Whether the carrier's date after the promise is late often enough on this lane, by its
    measured misses (models.transit), to tell the customer; unmeasured: as configured."""
    rules, models = _RULES_IN_FORCE.get(), _MODELS_IN_FORCE.get()
    promised, carrier_date = state.promised_delivery_date, package.carrier_current_estimate
    if models is None or promised is None or carrier_date is None \
            or rules.estimate_after_promise_notice_probability <= 0:
        return True
    if local_date(package.shipped_at or package.accepted_at, state.delivery_time_zone) is None:
        return True
    model = _lane_model(state, package, models, rules)
    late = None if model is None else _late_given_carrier_date(state, package, model, now)
    if late is None:
        return not rules.estimate_after_promise_hold_unmeasured
    return late >= rules.estimate_after_promise_notice_probability


def _late_given_carrier_date(state: OrderState, package: PackageState, model: LaneModel, now: datetime,
                             over_levels: LaneModel | None = None) -> float | None:
    """The probability of missing the promise once the carrier gave its current date, weighed
    by the lane's history and the carrier's measured misses (models.transit); None without a
    promise or a carrier date, or while those misses are not measured.

    Judged as of the scan that gave the date (its lead, its time in transit), as the misses
    were measured; a backlog read later does not shorten the lead."""
    promised, carrier_date = state.promised_delivery_date, package.carrier_current_estimate
    given = min(package.carrier_estimate_at or now, now)
    today = local_date(given, state.delivery_time_zone)
    handed_over = local_date(package.shipped_at or package.accepted_at, state.delivery_time_zone)
    if promised is None or carrier_date is None or today is None or handed_over is None:
        return None
    return late_given_carrier_date(model, handed_over, today, promised, carrier_date,
                                   _handed_over_afternoon(state, package), over_levels)


_NO_WAIT = timedelta(0)


def _from_route(state: OrderState, condition: Condition) -> bool:
    """A predicted_late the promised morning's route rule raised (models.detection)."""
    if condition.kind is not AlertKind.predicted_late:
        return False
    package = state.packages.get(condition.package_id)
    return package is not None and condition.due_at == package.not_out_for_delivery_by \
        and condition.due_at != package.predicted_late_since


def _tells_customer(condition: Condition) -> bool:
    return condition.kind in DELAY_REASONS or condition.kind is AlertKind.presumed_lost


def _notice_milestone(condition: Condition) -> str:
    if condition.kind is AlertKind.presumed_lost:
        return f"{condition.package_id}:{NotificationType.exception.value}:{ExceptionReason.lost.value}"
    return _delay_milestone(condition.package_id, condition.kind)


def _delay_milestone(package_id: str, kind: AlertKind) -> str:
    return f"{package_id}:{NotificationType.delayed.value}:{kind.value}"


def _tell_customer_about_alert(state: OrderState, condition: Condition, event: Event, now: datetime,
                               effects: list[Effect], route_rule: bool = False) -> bool:
    package = state.packages.get(condition.package_id)
    if condition.kind is AlertKind.predicted_late:
        levels = _RULES_IN_FORCE.get().predicted_late_notice_levels
        if package is None or not (route_rule or state.service_level in levels):
            return False  # ops only (the route rule alone: _tell_route_rule)
        promised = state.promised_delivery_date
        # A date within the promise would contradict the notice: none until the model has one after it.
        new_date = package.model_estimate if package.model_estimate and promised and \
            package.model_estimate > promised else None
        told = _notify(state, effects, NotificationType.delayed, event, package=package,
                       instance=condition.kind.value, reason=PREDICTED_LATE_REASON,
                       estimated_delivery=new_date, previous_estimate=package.notified_estimate,
                       estimate_source="model" if new_date else "",
                       estimate_confidence=package.model_confidence if new_date else None,
                       occurred_at=condition.due_at, now=now)
        if told:
            package.notified_estimate = new_date or package.notified_estimate
        return told
    if condition.kind is AlertKind.estimate_after_promise and package is not None \
            and not _carrier_date_likely_late(state, package, now):
        return False  # ops hear it; the customer only when the lane measured such dates late
    if condition.kind in DELAY_REASONS:
        new_date = package.estimated_delivery if package else None
        if condition.kind is AlertKind.promise_missed and new_date and state.promised_delivery_date \
                and new_date <= state.promised_delivery_date:
            new_date = None  # the old estimate is past too: no new date to give yet
        told = _notify(state, effects, NotificationType.delayed, event, package=package,
                       instance=condition.kind.value, reason=DELAY_REASONS[condition.kind],
                       estimated_delivery=new_date, previous_estimate=package.notified_estimate if package else None,
                       occurred_at=condition.due_at, now=now)
        if told and package is not None:
            package.notified_estimate = new_date or package.notified_estimate
        return told
    if condition.kind in (AlertKind.carrier_exception, AlertKind.presumed_lost) and package is not None:
        reason = (ExceptionReason.lost if condition.kind is AlertKind.presumed_lost
                  else ExceptionReason(package.exception_reason or ExceptionReason.other.value))
        _notify(state, effects, NotificationType.exception, event, package=package, instance=reason.value,
                reason=reason.value, next_step=CUSTOMER_WORDS[reason][1], occurred_at=condition.due_at, now=now)
    return False


def _revise_estimates(state: OrderState, event: Event, effects: list[Effect], delays_told: set[str],
                      now: datetime, rules: Thresholds) -> None:
    if isinstance(event, CarrierScan):
        found = state.packages.get(event.package_id)
        packages = [found] if found is not None else []
    elif isinstance(event, ClockTick):  # time in transit moves our model's date too
        packages = state.outbound()
    else:
        return
    today = local_date(now, state.delivery_time_zone)
    for package in packages:
        new, told = package.estimated_delivery, package.notified_estimate
        if package.is_return or package.delivered_at is not None or new is None or new == told:
            continue
        if package.package_id in delays_told:  # the delay notice gave the new date (or none yet)
            package.notified_estimate = new
            continue
        if state.promised_delivery_date is not None and new > state.promised_delivery_date \
                and _late_date_held(state, package):
            # The carrier's late date is weighed first: the delay notice will carry it. Until
            # then a date told that has passed gives way to the promise.
            if told is None or today is None or not told < today:
                continue
            new = state.promised_delivery_date
        if today is not None and new < today:
            continue  # a day already over is no estimate (a promise a package outlasted)
        # Hysteresis: a later date is always news; an earlier one only when clearly earlier or
        # when the date told has passed, so a date flipping between two days is told once.
        if told is not None and new < told and (told - new).days < rules.estimate_earlier_days \
                and (today is None or told >= today):
            continue
        package.revisions_told += 1
        _notify(state, effects, NotificationType.estimate_revised, event, package=package,
                instance=f"{package.revisions_told}:{new.isoformat()}", estimated_delivery=new,
                previous_estimate=told)
        package.notified_estimate = new


def _ask_for_feedback(state: OrderState, event: Event, now: datetime, rules: Thresholds,
                      effects: list[Effect]) -> datetime | None:
    """Ask once it is due; returns when it will be due if that is still ahead."""
    if _FEEDBACK_MILESTONE in state.notified:
        return None
    due = feedback_due(state, rules)
    if due is not None and due <= now:
        _notify(state, effects, NotificationType.feedback_request, event, package=None, occurred_at=due, now=now)
        return None
    return due


def _next_deadline(state: OrderState, current: dict[str, Condition], feedback: datetime | None,
                   allowance: Callable[[Condition], timedelta], now: datetime) -> datetime | None:
    # Only deadlines need a tick: a finding an event reports (a carrier's late estimate, an
    # exception) is judged at that event. Counting one here left a past time as the next
    # deadline whenever a scan re-dated an open finding, and the order's real deadlines (the
    # promise) waited for its next scan (found by make quality).
    # Nor does an open alert's deadline: it is past (else the alert had closed), and a scan that
    # re-dated it (a late newer scan, a new measure) would leave that past time to tick at.
    pending = [c.due_at for key, c in current.items()
               if c.kind in DEADLINE_KINDS and ((known := state.alerts.get(key)) is None
                                                or (known.closed_at is not None and known.due_at != c.due_at))]
    # An open deadline alert whose customer has not been told: look again after the allowance.
    pending.extend(_notice_due(state, key, c, allowance) for key, c in current.items()
                   if c.kind in DEADLINE_KINDS and (known := state.alerts.get(key)) is not None
                   and known.closed_at is None and c.due_at <= known.opened_at
                   and _notice_milestone(c) not in state.notified and _tells_customer(c))
    # The promised morning's route rule is a deadline too: no scan comes when no route leaves.
    # Not while an alert of its key is open (one the history rule opened stays, under its id).
    pending.extend(c.due_at + allowance(c) for key, c in current.items()
                   if _from_route(state, c) and ((known := state.alerts.get(key)) is None
                                                 or (known.closed_at is not None and known.due_at != c.due_at)))
    # The route rule's customer notice, where enabled, while the promised day lasts: a time
    # already past (a backlog brought a later scan before the tick) means a tick at once. After
    # the promised day none is told, and none may leave a past time to tick at again and again.
    if (notices := _route_notices_due(state, current, allowance)) and now < (promise_end := _promise_end(state)):
        pending.extend(at for _, at in notices if at < promise_end)
    if feedback is not None:
        pending.append(feedback)
    # A date told before the promise passes with no scan that day: look again once its day is
    # over (event time), so until the promised day the customer never holds a passed date. At
    # most one tick a day until then; after it the delay notices and the scans tell the dates.
    promised = state.promised_delivery_date
    if _MODELS_IN_FORCE.get() is not None and promised is not None:  # the date told moves on
        pending.extend(end for package in state.outbound()
                       if package.delivered_at is None and package.notified_estimate is not None
                       and package.notified_estimate < promised
                       and (end := end_of_local_day(package.notified_estimate, state.delivery_time_zone)) > now)
        # A carrier's late date held from the customer: weighed again at each local midnight
        # until the promised day is over, with the models then in force (a lane measured since
        # the last scan may now tell it), not only at the package's next scan.
        # (Most events hold no such date: the conditions built for this event say so first.)
        today = local_date(now, state.delivery_time_zone)
        if today is not None and any(c.kind is AlertKind.estimate_after_promise for c in current.values()) \
                and any(_late_date_held(state, p) for p in state.outbound()):
            midnight = end_of_local_day(today, state.delivery_time_zone)
            if midnight < _promise_end(state):
                pending.append(midnight)
    return min(pending, default=None)


# --- effects ---------------------------------------------------------------------------

def _notify(state: OrderState, effects: list[Effect], type_: NotificationType, event: Event,
            *, package: PackageState | None, instance: str = "", occurred_at: datetime | None = None,
            now: datetime | None = None, **details: object) -> bool:
    """One command per order (or package), milestone and instance; False if already told."""
    package_id = package.package_id if package else ""
    milestone = f"{package_id}:{type_.value}" + (f":{instance}" if instance else "")
    if milestone in state.notified:
        return False
    state.notified.append(milestone)
    id_parts = (state.order_id, package_id, type_.value) + ((instance,) if instance else ())
    happened = occurred_at or event.occurred_at
    told = details.get("estimated_delivery")
    if told is not None and "estimate_source" not in details:  # say where the date comes from
        if package is not None and told == package.estimated_delivery:
            details.update(estimate_source=package.estimate_source, estimate_confidence=package.estimate_confidence)
        elif told == state.promised_delivery_date:
            details["estimate_source"] = "promise"
    command = NotificationCommand(
        command_id=stable_id(*id_parts),
        type=type_,
        order_id=state.order_id,
        package_id=package_id,
        customer_id=state.customer_id,
        occurred_at=happened,
        caused_by_ingested_at=now or _ingested_at(event),
        stale_after=_stale_after(state, type_, happened),
        carrier=package.carrier if package else "",
        tracking_number=package.tracking_number if package else "",
        tracking_url=tracking_url(package.carrier, package.tracking_number) if package and package.tracking_number
        else "",
        **details,  # type: ignore[arg-type]
    )
    if state.customer_id:
        effects.append(command)
    else:  # the order is not known yet: nobody to address it to
        state.waiting_for_order.append(command)
    return True


_STALE_AFTER_WINDOW = {NotificationType.order_confirmed, NotificationType.estimate_set, NotificationType.shipped}


def _stale_after(state: OrderState, type_: NotificationType, happened: datetime) -> datetime | None:
    """When an update stops being news; None for those that never do (delivered, delays, ...)."""
    if type_ in _STALE_AFTER_WINDOW:
        return happened + timedelta(hours=_RULES_IN_FORCE.get().stale_notice_hours)
    if type_ is NotificationType.out_for_delivery:
        day = local_date(happened, state.delivery_time_zone)
        return end_of_local_day(day, state.delivery_time_zone) if day else None
    return None


def _alert_effects(state: OrderState, alert: AlertState, change: str, now: datetime) -> list[Effect]:
    package = state.packages.get(alert.package_id)
    alert_id = stable_id(state.order_id, alert.package_id, alert.alert_kind.value, alert.due_at.isoformat())
    return [
        Alert(alert_id=alert_id, alert_kind=alert.alert_kind, order_id=state.order_id,
              package_id=alert.package_id, state=change,  # type: ignore[arg-type]
              due_at=alert.due_at, at=now, detail=alert.detail,
              carrier=package.carrier if package else "", service_level=state.service_level),
        HistoryRecord(record_id=stable_id(alert_id, change), record_type="alert", order_id=state.order_id,
                      package_id=alert.package_id, event_id=alert_id, source="trackline",
                      carrier=package.carrier if package else "",
                      tracking_number=package.tracking_number if package else "",
                      status=alert.alert_kind.value, previous_status=change, detail=alert.detail,
                      occurred_at=alert.due_at if change == "open" else now, ingested_at=now,
                      attributes={"due_at": alert.due_at.isoformat(), "opened_at": alert.opened_at.isoformat(),
                                  "service_level": state.service_level, "seller_id": state.seller_id,
                                  "fulfillment_center": state.fulfillment_center}),
    ]


def _event_time(entry: TimelineEntry) -> datetime:
    return entry.occurred_at


def _ingested_at(event: Event) -> datetime:
    return event.ingested_at or event.occurred_at


def _event_record(event: Event, detail: str = "") -> HistoryRecord:
    scan = event if isinstance(event, CarrierScan) else None
    return HistoryRecord(
        record_id=stable_id(event.event_id, "event"),
        record_type="event",
        order_id=event.order_id,
        package_id=getattr(event, "package_id", "") or getattr(event, "return_id", ""),
        event_id=event.event_id,
        source=scan.source if scan else "fulfillment",
        carrier=normalize_carrier(getattr(event, "carrier", "")),
        tracking_number=getattr(event, "tracking_number", ""),
        status=scan.status.value if scan else event.type,
        raw_code=scan.raw_code if scan else "",
        detail=detail or (scan.raw_message if scan else ""),
        occurred_at=event.occurred_at,
        ingested_at=_ingested_at(event),
    )


def _transition(event: Event, package_id: str, status: StrEnum, previous: StrEnum) -> HistoryRecord:
    return HistoryRecord(
        record_id=stable_id(event.event_id, "transition", package_id),
        record_type="transition", order_id=event.order_id, package_id=package_id,
        event_id=event.event_id, status=status.value, previous_status=previous.value,
        occurred_at=event.occurred_at, ingested_at=_ingested_at(event),
    )


class BatchOutcome(NamedTuple):
    changed: dict[str, OrderState]  # the states to store
    effects: list[Effect]
    failed: list[tuple[int, Exception]]  # (index in ``events``, what applying it raised): for the DLQ
    models: LaneModels | None = None  # the lane models in force after the batch


def apply_batch(states: dict[str, OrderState | None], events: Sequence[Event | LaneModelsUpdated],
                rules: Thresholds = DEFAULT_RULES, reload: Callable[[str], OrderState | None] | None = None,
                latency: FeedLatency | None = None, models: LaneModels | None = None) -> BatchOutcome:
    """Apply events in arrival order per order; return the states that changed and all effects.

    Lets the shell read and write each order's state once per batch, not once per event.
    The states given are the shell's own working copies and are updated in place.

    One event that breaks a rule (a bug) costs nothing else: its order goes back to the
    stored state (``reload``, or a copy taken first), the order's other events are applied
    again without it, and every other order is left alone.
    """
    # A lane-model update takes effect where it sits among the events: each event is applied
    # with the models in force at its place, so a replay gives the same estimates.
    in_force: dict[int, LaneModels | None] = {}
    by_order: dict[str, list[int]] = {}
    for index, event in enumerate(events):
        if isinstance(event, LaneModelsUpdated):
            models = (models or LaneModels()).updated(event)
            continue
        in_force[index] = models
        by_order.setdefault(event.order_id, []).append(index)
    changed: dict[str, OrderState] = {}
    effects: list[Effect] = []
    failed: list[tuple[int, Exception]] = []
    for order_id, indexes in by_order.items():
        if states.get(order_id) is None:
            # A tick is for a deadline of a stored order; with none stored (removed by
            # retention, a tick redelivered after the tombstone) it must not start an empty one.
            indexes = [i for i in indexes if not isinstance(events[i], ClockTick)]
            if not indexes:
                continue
        skipped: set[int] = set()
        # Events applied once already: applied again (the order went back to its stored state
        # without a failing event), their feed delays are not counted a second time.
        attempted: set[int] = set()
        backup = None if reload is not None else _copy(states.get(order_id))
        while True:
            state = states.get(order_id)
            if state is None:
                state = states[order_id] = OrderState(order_id=order_id)
            produced: list[Effect] = []
            touched = False
            current = -1
            try:
                for current in indexes:
                    if current in skipped:
                        continue
                    applied = events[current]
                    assert not isinstance(applied, LaneModelsUpdated)
                    if latency is not None:
                        latency.counting = current not in attempted
                    attempted.add(current)
                    out = apply_in_place(state, applied, rules, latency, in_force[current])
                    produced.extend(out)
                    touched = touched or bool(out) or isinstance(events[current], ClockTick)
            except Exception as exc:
                failed.append((current, exc))
                skipped.add(current)
                try:
                    states[order_id] = reload(order_id) if reload is not None else _copy(backup)
                except Exception as unreadable:  # the stored state cannot be read back (damaged)
                    # Nothing of this order is applied or stored: its other events fail with it.
                    failed.extend((i, unreadable) for i in indexes if i not in skipped)
                    states.pop(order_id, None)
                    touched = False
                    break
                continue
            break
        if latency is not None:
            latency.counting = True
        if touched:
            changed[order_id] = state
            effects.extend(produced)
    return BatchOutcome(changed, effects, failed, models)


def _copy(state: OrderState | None) -> OrderState | None:
    return copy_state(state) if state is not None else None


def order_view(state: OrderState) -> dict:
    """What support and customers see for one order: status, packages, dates, open alerts."""
    return {
        "order_id": state.order_id,
        "status": state.status.value,
        "placed_at": state.placed_at,
        "promised_delivery_date": state.promised_delivery_date,
        "service_level": state.service_level,
        "packages": [
            {
                "package_id": p.package_id,
                "kind": "return" if p.is_return else "outbound",
                "carrier": p.carrier,
                "tracking_number": p.tracking_number,
                "tracking_url": tracking_url(p.carrier, p.tracking_number) if p.tracking_number else "",
                "status": p.status.value,
                "status_at": p.status_at,
                "exception_reason": p.exception_reason,
                "estimated_delivery": p.estimated_delivery,
                "estimate_source": p.estimate_source,
                "estimate_confidence": p.estimate_confidence,
                # Our lane model's own view, whichever date is shown (models.transit).
                "model_estimate": p.model_estimate,
                "model_confidence": p.model_confidence,
                "model": p.model_key,
                "late_probability": p.late_probability,
                "carrier_original_estimate": p.carrier_original_estimate,
                "carrier_current_estimate": p.carrier_current_estimate,
                "delivered_at": p.delivered_at,
                "timeline": [as_dict(e) for e in p.timeline],
            }
            for p in state.packages.values()
        ],
        "open_alerts": [
            {"kind": a.alert_kind.value, "package_id": a.package_id, "due_at": a.due_at,
             "opened_at": a.opened_at, "detail": a.detail}
            for a in state.open_alerts()
        ],
        "notified": list(state.notified),
    }
