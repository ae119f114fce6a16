"""Delay and stale-tracking rules: which deadlines an order has, given its state.

A *condition* is a rule that currently applies to an order or package together with the
time it becomes due (``due_at``). The order rules open an alert once ``now`` reaches
``due_at`` and close it when the condition goes away (the package moved on) or is no
longer due (a new scan pushed the stale deadline out). The earliest deadline not yet
reached is the order's ``next_deadline``: the worker indexes it, so a tick looks only
at orders that are due, never at every open shipment.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from models.effects import AlertKind
from models.events import PackageStatus
from models.state import OrderState, PackageState
from models.thresholds import Thresholds

# Once the package is in one of these, no delay rule applies to it.
SETTLED = {PackageStatus.delivered, PackageStatus.returning_to_sender, PackageStatus.returned_to_sender,
           PackageStatus.cancelled}
# The carrier has it: any status past "label created".
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NOT_ACCEPTED = {PackageStatus.info_received, PackageStatus.unknown, PackageStatus.cancelled}
# Deadlines: found by the absence of an event, so judged only at the ingest-time watermark
# (on a tick). The others are findings that an event itself reports.
DEADLINE_KINDS = frozenset({AlertKind.warehouse_delay, AlertKind.pickup_delay_1, AlertKind.pickup_delay_2,
                            AlertKind.in_transit_stale, AlertKind.presumed_lost, AlertKind.promise_missed,
                            AlertKind.out_for_delivery_overdue})


class Condition(NamedTuple):
    """One delay rule that applies, due at ``due_at``. Built for every event: kept cheap
    (a tuple; the text for ops is formatted only when an alert opens)."""

    kind: AlertKind
    package_id: str
    due_at: datetime
    key: str  # "<package>:<kind>": one alert at a time per key
    template: str  # what ops read; "{}" takes ``about``
    about: object = None

    @property
    def detail(self) -> str:
        about = self.about.isoformat() if isinstance(self.about, (date, datetime)) else self.about
        return self.template.format(about) if about is not None else self.template


_KIND = {kind: kind.value for kind in AlertKind}


def alert_key(kind: AlertKind, package_id: str) -> str:
    """The key of a package's alert of ``kind``: one alert at a time per key."""
    return package_id + ":" + _KIND[kind]


def _condition(kind: AlertKind, package_id: str, due_at: datetime, template: str, about: object = None) -> Condition:
    return Condition(kind, package_id, due_at, alert_key(kind, package_id), template, about)


def conditions(state: OrderState, rules: Thresholds) -> list[Condition]:
    """Every delay rule that applies to the order now, with the time it is (or was) due."""
    if state.cancelled_at is not None or state.return_requested_at is not None:
        return []
    found: list[Condition] = []
    outbound = state.outbound()
    promise_end = (end_of_local_day(state.promised_delivery_date, state.delivery_time_zone)
                   if state.promised_delivery_date else None)
    if not outbound:
        if state.ship_by is not None:
            found.append(_condition(AlertKind.warehouse_delay, "",
                                    state.ship_by + timedelta(minutes=rules.warehouse_grace_minutes),
                                    "not shipped by {}", state.ship_by))
        if promise_end is not None:
            found.append(_condition(AlertKind.promise_missed, "", promise_end,
                                    "promised {}, not shipped", state.promised_delivery_date))
        return found
    for package in outbound:
        if package.status in (PackageStatus.returning_to_sender, PackageStatus.returned_to_sender):
            found.append(_condition(AlertKind.carrier_exception, package.package_id,
                                    _learned(package.status_at, package.status_seen_at), "returned_to_sender"))
        elif package.status not in SETTLED:
            found.extend(_package_conditions(state, package, rules, promise_end))
    return found


def _package_conditions(state: OrderState, package: PackageState, rules: Thresholds,
                        promise_end: datetime | None) -> list[Condition]:
    level = rules.level(state.service_level)
    pid = package.package_id
    found: list[Condition] = []
    if package.status is PackageStatus.exception:
        found.append(_condition(AlertKind.carrier_exception, pid, _learned(package.status_at, package.status_seen_at),
                                package.exception_reason))
    if package.accepted_at is None and package.shipped_at is not None:
        found.append(_condition(AlertKind.pickup_delay_1, pid,
                                package.shipped_at + timedelta(hours=level.pickup_delay_1_hours),
                                "label created, no carrier acceptance scan"))
        found.append(_condition(AlertKind.pickup_delay_2, pid,
                                package.shipped_at + timedelta(hours=level.pickup_delay_2_hours),
                                "label created, no carrier acceptance scan"))
    elif package.last_scan_at is not None and package.status is not PackageStatus.available_for_pickup:
        # Waiting at a pickup point is not silence: the customer has to come. Silence in
        # event time, from the last scan; judged against what this carrier's packages usually
        # do (kept as it was while the alert is open: models.order._measure_silence).
        found.append(_condition(AlertKind.in_transit_stale, pid,
                                package.last_scan_at + rules.stale_after(state.service_level, package.carrier,
                                                                         package.usual_silence_hours),
                                "no scan since {}", package.last_scan_at))
        found.append(_condition(AlertKind.presumed_lost, pid,
                                package.last_scan_at + timedelta(hours=level.lost_after_hours),
                                "no scan since {}", package.last_scan_at))
    if package.status is PackageStatus.out_for_delivery and package.out_for_delivery_at is not None:
        day = package.out_for_delivery_at.astimezone(_zone(state.delivery_time_zone)).date()
        due = min(end_of_local_day(day, state.delivery_time_zone)
                  + timedelta(minutes=rules.out_for_delivery_grace_minutes),
                  package.out_for_delivery_at + timedelta(hours=rules.out_for_delivery_max_hours))
        found.append(_condition(AlertKind.out_for_delivery_overdue, pid, due,
                                "out for delivery on {}, not delivered", day))
    promised = state.promised_delivery_date
    if (promised and package.carrier_current_estimate and package.carrier_current_estimate > promised
            and package.carrier_estimate_at is not None):
        found.append(_condition(AlertKind.estimate_after_promise, pid,
                                _learned(package.carrier_estimate_at, package.estimate_seen_at),
                                f"carrier estimate {package.carrier_current_estimate}, promised {promised}"))
    if promise_end is not None:
        found.append(_condition(AlertKind.promise_missed, pid, promise_end, "promised {}, not delivered", promised))
        # Our model, while there is time to act (models.transit): likely late by the lane's
        # history, or not out for delivery on the promised day by the hour the carrier's routes
        # have left by then; whichever came first.
        since, route = package.predicted_late_since, package.not_out_for_delivery_by
        if since is not None and (route is None or since <= route):
            found.append(_condition(AlertKind.predicted_late, pid, since,
                                    f"{round((package.late_probability or 1) * 100)}% likely after the promised "
                                    f"{promised} (model {package.model_key})"))
        elif route is not None:
            found.append(_condition(AlertKind.predicted_late, pid, route,
                                    f"not out for delivery by {{}} on the promised {promised} (model "
                                    f"{package.model_key})",
                                    route.astimezone(_zone(state.delivery_time_zone)).strftime("%H:%M")))
    return found


def _learned(happened: datetime | None, seen: datetime | None) -> datetime:
    """Due at once for what a scan reported: a carrier clock running ahead of ours must not delay it."""
    return min(filter(None, [happened, seen]), default=_EPOCH)


def feedback_due(state: OrderState, rules: Thresholds) -> datetime | None:
    """When to ask for feedback: a set time after the whole order was delivered."""
    outbound = state.outbound()
    if (not outbound or state.cancelled_at or state.return_requested_at
            or any(p.delivered_at is None for p in outbound) or not state.all_items_shipped()):
        return None
    return max(p.delivered_at for p in outbound if p.delivered_at) + timedelta(hours=rules.feedback_after_hours)


@lru_cache(maxsize=4096)
def end_of_local_day(day: date, time_zone: str) -> datetime:
    """Midnight after ``day`` where the customer lives, in UTC."""
    zone = _zone(time_zone)
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)


def local_moment(day: date, hour: int, time_zone: str) -> datetime:
    """``hour`` o'clock on ``day`` where the customer lives, in UTC."""
    return datetime.combine(day, time(hour), tzinfo=_zone(time_zone)).astimezone(UTC)


def local_hour(moment: datetime, time_zone: str) -> int:
    return moment.astimezone(_zone(time_zone)).hour


def local_date(moment: datetime | None, time_zone: str) -> date | None:
    return moment.astimezone(_zone(time_zone)).date() if moment else None


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return ZoneInfo("UTC")
