"""Detection thresholds: how long is too long, per service level and carrier.

Defaults live here and, documented, in ``config/detection.toml``; a deployment passes its
own file (``TRACKLINE_THRESHOLDS``). The text is parsed here; reading it is the shell's job.
"""

from __future__ import annotations

import tomllib
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from models.events import ServiceLevel


class LevelThresholds(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    pickup_delay_1_hours: float = Field(gt=0)  # label created, no acceptance scan
    pickup_delay_2_hours: float = Field(gt=0)
    stale_after_hours: float = Field(gt=0)  # no scan while in the carrier's hands
    lost_after_hours: float = Field(gt=0)  # silence long enough to presume it lost
    # The customer hears "lost" only after at least this much silence (ops hear at
    # lost_after_hours); None or 0: at the lost threshold. See models.order._lost_notice_due.
    lost_notice_min_hours: float | None = Field(default=None, ge=0)
    pickup_hold_days: float = Field(default=7, gt=0)  # how long a pickup point holds it
    # Replaces ``Thresholds.predicted_late_probability`` for this level where set: each level's
    # is chosen by what make quality measured on it.
    predicted_late_probability: float | None = Field(default=None, gt=0, le=1)


class CarrierThresholds(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    stale_after_hours: float | None = Field(default=None, gt=0)  # replaces the level's value


_LEVEL_DEFAULTS = {
    ServiceLevel.same_day: LevelThresholds(pickup_delay_1_hours=2, pickup_delay_2_hours=4,
                                           stale_after_hours=4, lost_after_hours=48),
    # A carrier's silence does not shorten with the service sold: packages come back from a
    # week without a scan (USPS takes a Missing Mail search only 7 days after mailing), so a
    # customer of a fast level hears "lost" after eight days, not at the ops threshold.
    # predicted_late at 0.7 on one-day, two-day and standard: in time for more of the late
    # packages at 83.9% precision or more on three histories (README, stops 32 and 39; two-day's
    # fell below 80% at stop 32, before the carrier's far dates were weighed by its other levels).
    ServiceLevel.one_day: LevelThresholds(pickup_delay_1_hours=8, pickup_delay_2_hours=24,
                                          stale_after_hours=18, lost_after_hours=96, lost_notice_min_hours=192,
                                          predicted_late_probability=0.7),
    ServiceLevel.two_day: LevelThresholds(pickup_delay_1_hours=24, pickup_delay_2_hours=48,
                                          stale_after_hours=36, lost_after_hours=168, lost_notice_min_hours=192,
                                          predicted_late_probability=0.7),
    ServiceLevel.standard: LevelThresholds(pickup_delay_1_hours=48, pickup_delay_2_hours=120,
                                           stale_after_hours=72, lost_after_hours=336,
                                           predicted_late_probability=0.7),
    ServiceLevel.locker_pickup: LevelThresholds(pickup_delay_1_hours=48, pickup_delay_2_hours=120,
                                                stale_after_hours=72, lost_after_hours=336,
                                                pickup_hold_days=3),
}


class Thresholds(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    warehouse_grace_minutes: float = Field(default=0, ge=0)  # after ship_by
    out_for_delivery_grace_minutes: float = Field(default=0, ge=0)  # after local midnight
    # A delivery route ends before midnight: out for delivery longer than this is overdue too.
    out_for_delivery_max_hours: float = Field(default=16, gt=0)
    feedback_after_hours: float = Field(default=72, gt=0)  # after the order was delivered
    # Feed-latency allowance: a customer hears of a missed deadline only once the watermark
    # passed it by the p99 of the feed's delay (ingested_at - occurred_at), measured per
    # (source, carrier) over the last ``feed_latency_samples`` first-seen events and clamped
    # to [floor, cap]; ``start`` until ``feed_latency_min_samples`` were seen.
    feed_allowance_start_minutes: float = Field(default=30, ge=0)
    feed_allowance_floor_minutes: float = Field(default=5, ge=0)
    feed_allowance_cap_minutes: float = Field(default=360, ge=0)
    feed_latency_samples: int = Field(default=500, ge=1)
    feed_latency_min_samples: int = Field(default=20, ge=1)
    # Stale notices: order_confirmed, estimate_set and shipped are not sent when trackline
    # sees their event more than this after it happened (out_for_delivery: once its local
    # day is over); they are recorded as "suppressed: stale".
    stale_notice_hours: float = Field(default=24, gt=0)
    # Scans whose tracking number no order announced within this long (by ingest time) leave
    # the router's held list with a history row and an ``unmatched_scans`` ops alert.
    unmatched_scan_hours: float = Field(default=48, gt=0)
    # A scan dated further than this ahead of its arrival is rejected (a carrier clock gone wrong).
    future_tolerance_minutes: float = Field(default=60, ge=0)
    # State retention (event time): an order's state is removed ``keep_after_final_days`` after
    # its last terminal fact (delivered and asked for feedback, cancelled, refunded), never
    # inside the return window after delivery, and ``idle_expiry_days`` after its last event
    # whatever its status. A marker remembers the removal for ``expired_marker_days`` more, so
    # a late event is dead-lettered as ``order_expired``; then the marker and the order's
    # tracking entries go too.
    keep_after_final_days: float = Field(default=7, gt=0)
    return_window_days: float = Field(default=30, ge=0)
    idle_expiry_days: float = Field(default=120, gt=0)
    expired_marker_days: float = Field(default=60, gt=0)
    # Our own estimate (models.transit): a lane's model is the histogram of its last
    # ``lane_model_window`` deliveries; a lane with fewer than ``lane_model_min_deliveries``
    # uses its carrier's model on that service level, and with fewer there too, no model.
    lane_model_window: int = Field(default=200, ge=1)
    lane_model_min_deliveries: int = Field(default=20, ge=1)
    # in_transit_stale, once a carrier's delivered packages on a level measured their usual
    # silence (the longest that 90% of them stayed within, models.transit): a silence this many
    # times as long; until then, and at 0, the configured stale_after_hours. In make quality the
    # fixed hours were below the silences up to 40% of a carrier's one-day and two-day packages
    # came back from: 82% of the stale alerts were false (README, stop 33).
    stale_learned_factor: float = Field(default=1.5, ge=0)
    # A predicted_late ops alert opens when the model gives at least this probability of
    # arriving after the promise, before the promised day is over (a level may set its own).
    predicted_late_probability: float = Field(default=0.8, gt=0, le=1)
    # The route rule's own (on the promised day, no out-for-delivery scan by the hour this share
    # of the carrier's routes have left): kept apart, as its customer notice is measured at it.
    predicted_late_route_probability: float = Field(default=0.8, gt=0, le=1)
    # The service levels whose customers hear of a predicted_late too (a "delayed" notice with
    # the model's date). Empty by default: enable a level only where make quality measured
    # predicted_late's precision at 99% or more.
    predicted_late_notice_levels: list[ServiceLevel] = Field(default_factory=list)
    # The same for the route rule's predicted_late alone (not out for delivery on the promised
    # morning by the hour the carrier's routes have left): its own row in make quality. Off by
    # default, as issue 13 asks of any proactive notice. make quality measured it right 327 times
    # of 327 on one-day, two-day and standard service over three simulated histories:
    # config/detection-route-notices.toml turns it on for those levels.
    predicted_late_route_notice_levels: list[ServiceLevel] = Field(default_factory=list)
    # A carrier's date after the promise opens estimate_after_promise for ops at once; the
    # customer hears of it only when a delivery after the promise is at least this likely,
    # weighing the lane's transit times (from the time already in transit) against how the
    # carrier's dates at this lead missed on the lane (models.transit.late_given_carrier_date).
    # A held notice is told when a later scan makes it likely enough before the promised day
    # is over; after that promise_missed speaks. 0: told at once, as ops hear it.
    estimate_after_promise_notice_probability: float = Field(default=0.99, ge=0, le=1)
    # Where the carrier's dates at this lead are not measured yet (a young lane whose carrier
    # has no measured lane either): true holds the customer's notice as above (make quality:
    # most wrong notices came from such lanes), false tells it at once. With our own estimate
    # off there is nothing to weigh it with, and it is told at once.
    estimate_after_promise_hold_unmeasured: bool = True
    # Hysteresis of estimate_revised: a later date is always told; an earlier one only when it
    # is at least this many days earlier than the date told (or that date has passed), so a
    # date flipping between two days does not notify each time.
    estimate_earlier_days: int = Field(default=2, ge=1)
    service_levels: dict[ServiceLevel, LevelThresholds] = Field(default_factory=lambda: dict(_LEVEL_DEFAULTS))
    carriers: dict[str, CarrierThresholds] = Field(
        default_factory=lambda: {"usps": CarrierThresholds(stale_after_hours=96)})

    def level(self, service_level: str) -> LevelThresholds:
        # ServiceLevel members hash and compare as their string values: no enum lookup needed.
        found = self.service_levels.get(service_level)  # type: ignore[call-overload]
        return found or self.service_levels.get(ServiceLevel.standard, _LEVEL_DEFAULTS[ServiceLevel.standard])

    def late_threshold(self, service_level: str) -> float:
        """The probability of missing the promise at which predicted_late opens for this level
        (an unknown level is judged as standard, as for every level threshold). The customer
        notice, where a deployment enables it for the level, is told at the same one."""
        return self.level(service_level).predicted_late_probability or self.predicted_late_probability

    def stale_after(self, service_level: str, carrier: str, usual_silence_hours: float | None = None) -> timedelta:
        """How long without a scan is stale: ``stale_learned_factor`` times the carrier's usual
        silence on the level where it is measured (never later than the lost threshold, where
        presumed_lost opens too), else the configured hours (the carrier's override, else the
        level's)."""
        level = self.level(service_level)
        if usual_silence_hours is not None and self.stale_learned_factor > 0:
            return timedelta(hours=min(usual_silence_hours * self.stale_learned_factor, level.lost_after_hours))
        override = self.carriers.get(carrier)
        hours = override.stale_after_hours if override and override.stale_after_hours else None
        return timedelta(hours=hours or level.stale_after_hours)


def parse_thresholds(text: str) -> Thresholds:
    """Thresholds from TOML text; levels and keys left out keep their defaults.

    A file that sets ``predicted_late_probability`` at the top means it for every level it does
    not set one for: the built-in per-level values give way (else a deployment's 0.9 would
    silently stay 0.7 on one-day, two-day and standard, customer notices included where enabled).
    """
    data = tomllib.loads(text)
    levels = dict(_LEVEL_DEFAULTS)
    if "predicted_late_probability" in data:
        levels = {level: values.model_copy(update={"predicted_late_probability": None})
                  for level, values in levels.items()}
    for name, values in data.pop("service_levels", {}).items():
        level = ServiceLevel(name)
        levels[level] = LevelThresholds(**{**levels[level].model_dump(), **values})
    carriers = {**Thresholds().carriers, **{name: CarrierThresholds(**values)
                                           for name, values in data.pop("carriers", {}).items()}}
    return Thresholds(service_levels=levels, carriers=carriers, **data)
