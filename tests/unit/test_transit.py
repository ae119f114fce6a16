"""Our own delivery estimate (models.transit): the lane histogram, its estimate from time in
transit, the choice between carrier and model, predicted_late, and model versions in a batch.

The order in tests.conftest: two-day service with UPS, placed Monday 2026-11-02 08:00 UTC,
shipped 09:00, promised Wednesday 2026-11-04, customer in UTC.
"""

from __future__ import annotations

from datetime import date, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.effects import Alert, AlertKind, NotificationCommand
from models.events import PackageStatus
from models.order import apply_batch
from models.thresholds import Thresholds, parse_thresholds
from models.transit import (
    ALL_WEEKDAYS,
    CORRECTION_MIN_SCANS,
    ROUTE_CELLS,
    ROUTE_HOURS,
    LaneModel,
    LaneModels,
    LaneModelsUpdated,
    TransitObserved,
    build_model,
    estimate,
    histogram,
    lane_key,
    learned_weekdays,
    nth_working_day,
    service_key,
    working_days_between,
)
from tests.conftest import at, placed, run, scan, shipped, tick

S = PackageStatus
HOUR = 60
MONDAY = date(2026, 11, 2)
WEEKDAYS = (0, 1, 2, 3, 4)  # a carrier that rests at the weekend


@given(st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 1, 1)), st.integers(0, 60),
       st.sets(st.integers(0, 6), min_size=1))
def test_the_nth_working_day_is_n_working_days_later(start, n, weekdays):
    days = tuple(sorted(weekdays))
    found = nth_working_day(start, n, days)
    assert working_days_between(start, found, days) == n
    if n:
        assert found.weekday() in days
        assert working_days_between(start, found - timedelta(days=1), days) == n - 1


def test_a_friday_hand_over_to_a_weekday_carrier_delivered_monday_took_one_working_day():
    friday = date(2026, 11, 6)
    assert histogram([(friday, friday + timedelta(days=3))], WEEKDAYS) == [0, 1]
    assert histogram([(friday, friday + timedelta(days=3))], ALL_WEEKDAYS) == [0, 0, 0, 1]


def per_day(days: list[date]) -> list[tuple[date, int]]:
    from collections import Counter
    return sorted(Counter(days).items())


def test_weekdays_are_learned_from_the_deliveries_and_only_once_there_are_enough():
    # Four weeks of deliveries Monday to Friday.
    weekday_deliveries = [MONDAY + timedelta(days=7 * (n // 25) + n % 5) for n in range(100)]
    assert learned_weekdays(per_day(weekday_deliveries), min_deliveries=50) == WEEKDAYS
    assert learned_weekdays(per_day(weekday_deliveries[:10]), min_deliveries=50) == ALL_WEEKDAYS
    # One Saturday delivery among a hundred is an exception, not a working day.
    assert learned_weekdays(per_day([*weekday_deliveries, date(2026, 11, 7)]), min_deliveries=50) == WEEKDAYS
    # Many deliveries, but from the first days of a history only (Tuesday to Thursday):
    # the other weekdays have not come yet, they are not days off.
    first_days = [MONDAY + timedelta(days=1 + n % 3) for n in range(60)]
    assert learned_weekdays(per_day(first_days), min_deliveries=50) == ALL_WEEKDAYS


def test_a_busy_carriers_empty_weekend_is_a_weekend_after_one_a_quiet_carriers_after_two():
    saturday, sunday, next_monday = (MONDAY + timedelta(days=n) for n in (5, 6, 7))
    # 40 deliveries a day Monday to Friday, then a weekend with none: known once Monday's first
    # deliveries come (Monday itself, under way, is not judged).
    busy = per_day([MONDAY + timedelta(days=n % 5) for n in range(200)])
    monday_morning = busy + [(next_monday, 3)]
    assert learned_weekdays(monday_morning, min_deliveries=50, today=next_monday) == WEEKDAYS
    # Not while Saturday is under way (its deliveries are still coming in), nor before.
    assert learned_weekdays(busy, min_deliveries=50, today=saturday) == ALL_WEEKDAYS
    assert learned_weekdays(busy, min_deliveries=50) == ALL_WEEKDAYS  # today: the newest delivery, Friday
    # Nor Saturday alone on Sunday: a Friday hand-over delivered Monday would take two days.
    assert learned_weekdays(busy + [(saturday, 1)], min_deliveries=50, today=sunday) == ALL_WEEKDAYS
    # A clock far ahead does not make the days no delivery reached yet empty ones.
    assert learned_weekdays(busy, min_deliveries=50, today=date(2099, 1, 1)) == ALL_WEEKDAYS
    # 12 a day: one empty Saturday could be chance (a tenth of 12 is one delivery); two cannot.
    quiet = [MONDAY + timedelta(days=7 * (n // 60) + n % 5) for n in range(120)]
    assert learned_weekdays(per_day([*quiet[:60], next_monday]), min_deliveries=50, today=next_monday) == ALL_WEEKDAYS
    next_week = next_monday + timedelta(days=7)
    assert learned_weekdays(per_day([*quiet, next_week]), min_deliveries=50, today=next_week) == WEEKDAYS
    # A weekday empty once (a holiday) is not a day off; empty twice, it is.
    holiday = per_day([MONDAY + timedelta(days=7 * (n // 200) + n % 4) for n in range(400)])  # no Friday
    assert learned_weekdays([*holiday[:4], (next_monday, 1)], min_deliveries=50, today=next_monday) == (0, 1, 2, 3, 4)
    assert learned_weekdays([*holiday, (next_week, 1)], min_deliveries=50, today=next_week) == (0, 1, 2, 3)


def planned_for(weekdays: tuple[int, ...], dates: int, odd_share: float = 0.02) -> list[date]:
    """A carrier's first dates over a fortnight: on ``weekdays`` but for ``odd_share`` of them
    (a date a day past a Friday, or a feed's own rounding)."""
    days = [MONDAY + timedelta(days=d) for d in range(14)]
    usual = [d for d in days if d.weekday() in weekdays]
    odd = [d for d in days if d.weekday() not in weekdays] or usual
    return [odd[n % len(odd)] if n < dates * odd_share else usual[n % len(usual)] for n in range(dates)]


def test_a_carrier_whose_dates_avoid_the_weekend_rests_then_before_its_first_weekend_comes():
    friday, sunday = MONDAY + timedelta(days=4), MONDAY + timedelta(days=6)
    # A deployment's first week: 40 deliveries a day Monday to Thursday, Friday under way.
    first_week = per_day([MONDAY + timedelta(days=n % 4) for n in range(160)])
    weekday_only = planned_for(WEEKDAYS, 200)
    assert learned_weekdays(first_week, min_deliveries=50, today=friday, carrier_dates=weekday_only) == WEEKDAYS
    # Dates on every day but Sunday (a carrier out on Saturdays): Saturday works, Sunday not.
    assert learned_weekdays(first_week, min_deliveries=50, today=friday,
                            carrier_dates=planned_for((0, 1, 2, 3, 4, 5), 200)) == (0, 1, 2, 3, 4, 5)
    # Dates spread over the whole week (an optimistic carrier's dates land on any day) say nothing.
    assert learned_weekdays(first_week, min_deliveries=50, today=friday,
                            carrier_dates=planned_for(ALL_WEEKDAYS, 200)) == ALL_WEEKDAYS
    # Too few dates to tell a day off from chance.
    assert learned_weekdays(first_week, min_deliveries=50, today=friday,
                            carrier_dates=weekday_only[:50]) == ALL_WEEKDAYS
    # Dates alone, before enough deliveries to judge any day by them.
    assert learned_weekdays([], min_deliveries=50, carrier_dates=weekday_only) == WEEKDAYS
    # A day it delivers on is not off by its dates: with few deliveries yet, and today, while
    # Saturday's deliveries are still coming in.
    few_with_saturday = per_day([MONDAY + timedelta(days=n % 6) for n in range(30)])
    assert learned_weekdays(few_with_saturday, min_deliveries=50, carrier_dates=weekday_only) == (0, 1, 2, 3, 4, 5)
    saturday_under_way = per_day([MONDAY + timedelta(days=n % 6) for n in range(200)])
    assert learned_weekdays(saturday_under_way, min_deliveries=50, today=MONDAY + timedelta(days=5),
                            carrier_dates=weekday_only) == (0, 1, 2, 3, 4, 5)
    # Deliveries outweigh the dates: a Saturday that came with deliveries is a working day.
    delivered_saturday = per_day([MONDAY + timedelta(days=n % 6) for n in range(240)])
    assert learned_weekdays(delivered_saturday, min_deliveries=50, today=sunday,
                            carrier_dates=weekday_only) == (0, 1, 2, 3, 4, 5)
    # And a weekday its dates skipped (a holiday the carrier planned round) works once delivered on.
    no_thursday = [d for d in weekday_only if d.weekday() != 3]
    assert learned_weekdays(first_week, min_deliveries=50, today=friday, carrier_dates=no_thursday) == WEEKDAYS
    assert 3 not in learned_weekdays(first_week[:3], min_deliveries=50, today=MONDAY + timedelta(days=3),
                                     carrier_dates=no_thursday)


def test_a_carriers_dates_are_counted_once_a_package_from_its_hand_over_records():
    from models.transit import LaneWindow, TransitStarted, carrier_key, learn

    def dated(package: str, planned: date) -> TransitStarted:
        return TransitStarted(package_id=package, order_id="O", carrier="ups", service_level="two_day",
                              origin="FC-A", destination_region="US-CA", handed_over=MONDAY, carrier_date=planned)

    windows: dict[str, LaneWindow] = {}
    plans = planned_for(WEEKDAYS, 120)
    models = learn(windows, [dated(f"P{n}", day) for n, day in enumerate(plans)], window=200)
    assert {m.working_weekdays for m in models} == {WEEKDAYS}
    # A replay re-sends the same packages with a Sunday date: counted once, nothing moves. New
    # packages dated on every day of the week, as many again: the weekend is no longer avoided.
    windows_after_replay = learn(windows, [dated(f"P{n}", MONDAY + timedelta(days=6)) for n in range(120)],
                                 window=200)
    assert len(windows[carrier_key("ups")].carrier_dated) == 120 and windows_after_replay == []
    anyday = learn(windows, [dated(f"Q{n}", MONDAY + timedelta(days=n % 7)) for n in range(240)], window=200)
    assert {m.working_weekdays for m in anyday} == {ALL_WEEKDAYS}


def test_a_busy_carrier_keeps_weeks_of_days_however_many_deliveries_a_day():
    from models.transit import LaneWindow, carrier_key, learn

    windows: dict[str, LaneWindow] = {}
    weeks = [MONDAY + timedelta(days=d) for d in range(28) if (MONDAY + timedelta(days=d)).weekday() < 5]
    seen = [observed(day - timedelta(days=1), day, package=f"P{day}-{n}") for day in weeks for n in range(300)]
    models = learn(windows, seen, window=200)
    assert windows[carrier_key("ups")].delivered_per_day == [(day, 300) for day in weeks]
    assert {m.working_weekdays for m in models} == {WEEKDAYS}


def lane(counts: list[int], key: str = service_key("ups", "two_day"), version: int = 1, **extra) -> LaneModel:
    return LaneModel(key=key, version=version, transit_days=counts, working_weekdays=WEEKDAYS, **extra)


def test_the_estimate_is_the_median_of_deliveries_that_took_at_least_as_long():
    model = lane([0, 10, 20, 10])  # 1, 2 or 3 working days; the median 2
    at_hand_over = estimate(model, MONDAY, MONDAY, promised=date(2026, 11, 3))
    assert at_hand_over is not None
    assert at_hand_over.estimate == date(2026, 11, 4)  # Wednesday
    assert at_hand_over.confidence == 30 / 40
    assert at_hand_over.late_probability == 1 - 10 / 40  # only the one-day deliveries make Tuesday
    # Still travelling on Wednesday: only the deliveries that took 2 days or more are like it.
    on_wednesday = estimate(model, MONDAY, date(2026, 11, 4), promised=date(2026, 11, 3))
    assert on_wednesday is not None
    assert (on_wednesday.estimate, on_wednesday.confidence, on_wednesday.late_probability) == \
        (date(2026, 11, 4), 20 / 30, 1.0)
    # Thursday: the three-day ones.
    on_thursday = estimate(model, MONDAY, date(2026, 11, 5), promised=None)
    assert on_thursday is not None and on_thursday.estimate == date(2026, 11, 5) and on_thursday.confidence == 1
    # Travelling longer than any delivery it knows: no estimate, not a made-up one.
    assert estimate(model, MONDAY, date(2026, 11, 6), promised=None) is None


def test_a_weekend_pushes_the_estimate_to_the_next_working_day():
    friday = date(2026, 11, 6)
    found = estimate(lane([0, 1]), friday, date(2026, 11, 7), promised=None)  # asked on Saturday
    assert found is not None and found.estimate == date(2026, 11, 9)  # Monday


def test_newer_versions_replace_older_ones_and_a_sparse_lane_leans_on_its_carriers_model():
    models = LaneModels().updated(LaneModelsUpdated(models=[lane([0, 30], version=3)]))
    assert models.updated(LaneModelsUpdated(models=[lane([0, 0, 30], version=2)])).models == models.models
    # Found nowhere else: the carrier's model on the service level.
    wide = models.for_lane("ups", "two_day", "FC-B", "US-NY", min_deliveries=20)
    assert wide is not None and wide.key == service_key("ups", "two_day")
    # A lane with 5 deliveries of 2 days: they weigh as much as the carrier's 30 (scaled to 5).
    own = lane([0, 0, 5], key=lane_key("ups", "two_day", "FC-A", "US-CA"), version=5)
    models = models.updated(LaneModelsUpdated(models=[own]))
    blended = models.for_lane("ups", "two_day", "FC-A", "US-CA", min_deliveries=20)
    assert blended is not None and (blended.key, blended.version) == (own.key, 5)
    assert blended.transit_days == [0, 5, 5]
    assert models.for_lane("fedex", "two_day", "FC-A", "US-CA", min_deliveries=1) is None


def test_a_lane_with_no_history_keeps_the_pace_other_carriers_and_levels_keep_from_its_origin_to_its_region():
    from models.transit import PAIR_PRIOR_DELIVERIES

    # Over every lane, UPS two-day takes 1 or 2 working days and FedEx standard 2 to 4.
    ups, fedex = lane([0, 20, 20]), lane([0, 0, 20, 20, 20], key=service_key("fedex", "standard"))
    # From FC-A to New York both took their longest: 12 deliveries on the pair in all.
    far = [lane([0, 0, 6], key=lane_key("ups", "two_day", "FC-A", "US-NY")),
           lane([0, 0, 0, 0, 6], key=lane_key("fedex", "standard", "FC-A", "US-NY"))]
    level = lane([0, 0, 10, 10, 10, 10], key=service_key("ups", "standard"))
    models = LaneModels().updated(LaneModelsUpdated(models=[ups, fedex, *far, level]))
    # 36 working days where their levels would have taken 27, drawn towards the levels' pace
    # as if PAIR_PRIOR_DELIVERIES more deliveries had kept it.
    usual = 27 / 12 * PAIR_PRIOR_DELIVERIES
    assert models.pair_pace("FC-A", "US-NY") == pytest.approx((36 + usual) / (27 + usual))
    # UPS standard's new lane to New York has no deliveries: its level's history at that pace.
    paced = models.for_lane("ups", "standard", "FC-A", "US-NY", min_deliveries=20)
    assert paced is not None and paced.deliveries == level.deliveries
    at_level, at_pace = (estimate(m, MONDAY, MONDAY, promised=None) for m in (level, paced))
    assert at_level is not None and at_pace is not None and at_pace.estimate > at_level.estimate
    # A pair faster than its levels leaves the level's histogram as it is (shrunk, next-day
    # deliveries would land on the hand-over day and the level's longest would be lost).
    near = [lane([0, 6], key=lane_key("ups", "two_day", "FC-A", "US-PA")),
            lane([0, 0, 6], key=lane_key("fedex", "standard", "FC-A", "US-PA"))]
    faster = models.updated(LaneModelsUpdated(models=near))
    assert faster.pair_pace("FC-A", "US-PA") < 1
    assert faster.for_lane("ups", "standard", "FC-A", "US-PA", min_deliveries=20).transit_days == level.transit_days
    # Another destination: the level as it is.
    assert models.pair_pace("FC-A", "US-CA") is None
    assert models.for_lane("ups", "standard", "FC-A", "US-CA", min_deliveries=20).transit_days == level.transit_days
    # Half the deliveries move the pace less; a lane counted in other working days than its
    # level's (not rebuilt since its carrier's weekend was learned) is not among them.
    fewer = LaneModels().updated(LaneModelsUpdated(models=[ups, fedex, far[0], level]))
    stale = LaneModels().updated(LaneModelsUpdated(models=[
        ups, fedex, far[0], msgspec.structs.replace(far[1], working_weekdays=ALL_WEEKDAYS), level]))
    assert 1 < fewer.pair_pace("FC-A", "US-NY") < models.pair_pace("FC-A", "US-NY")
    assert stale.pair_pace("FC-A", "US-NY") == fewer.pair_pace("FC-A", "US-NY")
    # FedEx standard's own lane on the pair weighs in its own model already: its pace is the others'.
    assert models.pair_pace("FC-A", "US-NY", "fedex", "standard") == fewer.pair_pace("FC-A", "US-NY")


@given(st.lists(st.integers(0, 50), min_size=1, max_size=30), st.floats(0.2, 5))
def test_a_history_at_another_pace_keeps_its_deliveries_and_scales_their_mean_time(counts, pace):
    from models.transit import _mean_cell, _stretched

    stretched = _stretched([float(c) for c in counts], pace)
    assert sum(stretched) == pytest.approx(sum(counts))
    assert _mean_cell(stretched) == pytest.approx(_mean_cell([float(c) for c in counts]) * pace)


def test_a_lane_corrects_the_carriers_dates_at_leads_it_has_not_measured_from_the_carrier_over_every_lane():
    # The carrier's dates one day ahead came a day late on 40 scans over every lane; the lane
    # (its own 30 deliveries) measured them only three days ahead, right on 25 scans.
    wide = lane([0, 30], carrier_misses=carrier_misses_by(1, lead=1, scans=40))
    own = lane([0, 0, 30], key=lane_key("ups", "two_day", "FC-A", "US-CA"),
               carrier_misses=carrier_misses_by(0, lead=3, scans=25))
    found = LaneModels().updated(LaneModelsUpdated(models=[wide, own])).for_lane(
        "ups", "two_day", "FC-A", "US-CA", min_deliveries=20)
    assert found is not None
    assert (found.carrier_correction(1), found.carrier_correction(3)) == (1, 0)
    # Dated Tuesday on Monday: the lane's model shows Wednesday, as the carrier's such dates came.
    dated = estimate(found, MONDAY, MONDAY, promised=None, carrier_date=date(2026, 11, 3))
    assert dated is not None and dated.estimate == date(2026, 11, 4)
    # Without the carrier's measure, the lane (which never saw that lead) would keep Tuesday.
    alone = LaneModels().updated(LaneModelsUpdated(models=[lane([0, 30]), own])).for_lane(
        "ups", "two_day", "FC-A", "US-CA", min_deliveries=20)
    assert alone is not None and alone.carrier_correction(1) is None


def observed(handed_over: date, delivered: date, carrier_error: float = 0, model_error: float = 0,
             compared: int = 0, package: str = "P") -> TransitObserved:
    return TransitObserved(package_id=package, order_id="O", carrier="ups", service_level="two_day",
                           origin="FC-A", destination_region="US-CA", handed_over=handed_over, delivered=delivered,
                           carrier_error_days=carrier_error, model_error_days=model_error, compared=compared)


def test_the_lane_prefers_whichever_source_was_closer_on_its_deliveries():
    tuesday = date(2026, 11, 3)
    close_carrier = build_model("k", 2, [observed(MONDAY, tuesday, carrier_error=1, model_error=4, compared=4)],
                                WEEKDAYS)
    assert close_carrier.transit_days == [0, 1]
    assert (close_carrier.carrier_error_days, close_carrier.model_error_days) == (0.25, 1.0)
    assert not close_carrier.prefers_model()
    assert build_model("k", 2, [observed(MONDAY, tuesday, carrier_error=6, model_error=2, compared=4)],
                       WEEKDAYS).prefers_model()
    assert not build_model("k", 2, [observed(MONDAY, tuesday)], WEEKDAYS).prefers_model()  # never compared
    # Equally close (the model's date was the carrier's own, before any miss was measured): the
    # model's, which now carries the correction measured since.
    assert build_model("k", 2, [observed(MONDAY, tuesday, carrier_error=3, model_error=3, compared=4)],
                       WEEKDAYS).prefers_model()


def test_a_lane_chooses_by_its_own_measure_only_as_far_as_its_scans_can_tell():
    # Over every lane (thousands of scans) the model was closer: 0.7 against 0.9 days.
    level = lane([0, 30], carrier_error_days=0.9, model_error_days=0.7, compared=5000)

    def lane_measured(carrier: float, model: float, compared: int) -> LaneModel:
        own = lane([0, 30], key=lane_key("ups", "two_day", "FC-A", "US-CA"), carrier_error_days=carrier,
                   model_error_days=model, compared=compared)
        found = LaneModels().updated(LaneModelsUpdated(models=[level, own])).for_lane(
            "ups", "two_day", "FC-A", "US-CA", min_deliveries=20)
        assert found is not None and found.key == own.key
        return found
    # 100 scans where the carrier came out a little closer: chance, the level's choice stands.
    assert lane_measured(carrier=0.70, model=0.75, compared=100).prefers_model()
    assert lane_measured(carrier=0.60, model=0.75, compared=100).prefers_model()
    # A level measured at 30 scans weighs 30, not 400: the lane's 100 then tell.
    level = lane([0, 30], carrier_error_days=0.9, model_error_days=0.7, compared=30)
    assert not lane_measured(carrier=0.60, model=0.75, compared=100).prefers_model()
    # A lane stored before scans were counted keeps its own choice.
    assert not lane_measured(carrier=0.2, model=0.9, compared=0).prefers_model()
    # 5,000 scans of a carrier clearly closer on this lane: the lane's own.
    assert not lane_measured(carrier=0.5, model=0.8, compared=5000).prefers_model()


# --- in the order rules ----------------------------------------------------------------

def models_with(counts: list[int], carrier_error: float | None = None, model_error: float | None = None,
                misses: list[float] | None = None) -> LaneModels:
    return LaneModels().updated(LaneModelsUpdated(models=[lane(
        counts, carrier_error_days=carrier_error, model_error_days=model_error, carrier_misses=misses or [])]))


def carrier_misses_by(days: int, lead: int, scans: int = 20) -> list[float]:
    """A key on which the carrier's date, ``lead`` days ahead, missed by ``days`` at ``scans`` scans."""
    from models.transit import carrier_misses, summed

    return summed([carrier_misses([(MONDAY, MONDAY + timedelta(days=lead))],
                                  MONDAY + timedelta(days=lead + days))] * scans)


def apply_with(models: LaneModels, events, state=None, rules: Thresholds | None = None):
    from models.order import apply

    effects = []
    for event in events:
        state, produced = apply(state, event, models=models, rules=rules or Thresholds())
        effects.extend(produced)
    return state, effects


def test_without_a_carrier_date_the_customer_is_shown_the_models_with_its_confidence():
    models = models_with([0, 10, 30, 10])  # two working days after Monday: Wednesday
    state, effects = apply_with(models, [placed(), shipped(), scan(S.in_transit, 2 * HOUR)])
    package = state.packages["P1"]
    assert (package.estimated_delivery, package.estimate_source, package.estimate_confidence) == \
        (date(2026, 11, 4), "model", 0.8)
    shipped_notice = next(c for c in effects if isinstance(c, NotificationCommand) and c.type.value == "shipped")
    assert (shipped_notice.estimated_delivery, shipped_notice.estimate_source, shipped_notice.estimate_confidence) \
        == (date(2026, 11, 4), "model", 0.8)


def test_the_carriers_date_wins_unless_the_model_was_measured_closer_on_the_lane():
    scans = [placed(), shipped(), scan(S.in_transit, 2 * HOUR, estimated_delivery=date(2026, 11, 3))]
    carrier_better, _ = apply_with(models_with([0, 10, 30, 10], carrier_error=0.3, model_error=0.8), scans)
    assert (carrier_better.packages["P1"].estimated_delivery, carrier_better.packages["P1"].estimate_source) == \
        (date(2026, 11, 3), "carrier")
    # On this lane the carrier's date a day ahead was a day early: ours is the day after it.
    model_better, effects = apply_with(models_with([0, 10, 30, 10], carrier_error=1.2, model_error=0.5,
                                                   misses=carrier_misses_by(1, lead=1)), scans)
    assert (model_better.packages["P1"].estimated_delivery, model_better.packages["P1"].estimate_source) == \
        (date(2026, 11, 4), "model")


def young_level(misses: list[float]) -> LaneModels:
    """A level with three deliveries (too few for a model) and the carrier's misses measured on it."""
    return LaneModels().updated(LaneModelsUpdated(models=[lane([0, 1, 2], carrier_misses=misses)]))


def test_an_optimistic_carriers_date_is_shown_moved_by_its_usual_miss():
    tuesday = date(2026, 11, 3)
    scans = [placed(), shipped(), scan(S.in_transit, 2 * HOUR, estimated_delivery=tuesday)]
    # A level with three deliveries (no model yet) on which the carrier's dates a day ahead
    # were a day early at 20 scans: the customer is shown Wednesday, not the carrier's Tuesday.
    young = young_level(carrier_misses_by(1, lead=1))
    state, _ = apply_with(young, scans)
    package = state.packages["P1"]
    assert (package.estimated_delivery, package.estimate_source, package.carrier_current_estimate) == \
        (date(2026, 11, 4), "carrier_corrected", tuesday)
    # A model whose accuracy is not measured yet: the same moved date.
    unmeasured, _ = apply_with(models_with([0, 10, 30, 10], misses=carrier_misses_by(1, lead=1)), scans)
    assert (unmeasured.packages["P1"].estimated_delivery, unmeasured.packages["P1"].estimate_source) == \
        (date(2026, 11, 4), "carrier_corrected")
    # Once both were measured, the measure decides between them: here the carrier's date was
    # closer over its scans (at other leads), and at this lead, where it was a day early at 20
    # scans, it is shown moved by that usual miss, not as given.
    measured, _ = apply_with(models_with([0, 10, 30, 10], carrier_error=0.3, model_error=0.8,
                                         misses=carrier_misses_by(1, lead=1)), scans)
    assert (measured.packages["P1"].estimated_delivery, measured.packages["P1"].estimate_source) == \
        (date(2026, 11, 4), "carrier_corrected")
    # Misses measured at another lead only, or at too few scans: the carrier's date as it gave it.
    for misses in (carrier_misses_by(1, lead=3), carrier_misses_by(1, lead=1, scans=CORRECTION_MIN_SCANS - 1)):
        raw, _ = apply_with(young_level(misses), scans)
        assert (raw.packages["P1"].estimated_delivery, raw.packages["P1"].estimate_source) == (tuesday, "carrier")
    # A move past the promise (Wednesday) is not the correction's to give: the carrier's date.
    held, _ = apply_with(young_level(carrier_misses_by(2, lead=1)), scans)
    assert (held.packages["P1"].estimated_delivery, held.packages["P1"].estimate_source) == (tuesday, "carrier")
    # Another carrier's misses say nothing of this one's dates.
    other = LaneModels().updated(LaneModelsUpdated(models=[lane(
        [0, 1, 2], key=service_key("fedex", "two_day"), carrier_misses=carrier_misses_by(1, lead=1))]))
    mine, _ = apply_with(other, scans)
    assert (mine.packages["P1"].estimated_delivery, mine.packages["P1"].estimate_source) == (tuesday, "carrier")
    # The same carrier's other levels speak for a lead this level has not measured (its dates
    # come from one system): half the scans needed on standard, half on one-day.
    half = CORRECTION_MIN_SCANS // 2
    levels = LaneModels().updated(LaneModelsUpdated(models=[
        lane([0, 1, 2], key=service_key("ups", "standard"), carrier_misses=carrier_misses_by(1, lead=1, scans=half)),
        lane([0, 1], key=service_key("ups", "one_day"), carrier_misses=carrier_misses_by(1, lead=1, scans=half))]))
    pooled, _ = apply_with(levels, scans)
    assert (pooled.packages["P1"].estimated_delivery, pooled.packages["P1"].estimate_source) == \
        (date(2026, 11, 4), "carrier_corrected")
    # ... but not over the level's own measure at that lead: it saw these dates come on the day.
    own = LaneModels().updated(LaneModelsUpdated(models=[
        *levels.models.values(), lane([0, 1, 2], carrier_misses=carrier_misses_by(0, lead=1))]))
    kept, _ = apply_with(own, scans)
    assert (kept.packages["P1"].estimated_delivery, kept.packages["P1"].estimate_source) == (tuesday, "carrier")


def test_a_moved_date_is_moved_again_as_of_each_scan_and_a_late_carrier_date_is_never_moved_back():
    tuesday = date(2026, 11, 3)
    # Monday: the carrier's Tuesday, a day ahead, is shown as Wednesday. Tuesday, out for
    # delivery with the same date (no miss measured on the day itself): the notice says Tuesday.
    state, effects = apply_with(young_level(carrier_misses_by(1, lead=1)), [
        placed(), shipped(), scan(S.in_transit, 2 * HOUR, estimated_delivery=tuesday),
        scan(S.out_for_delivery, 26 * HOUR, estimated_delivery=tuesday)])
    out = next(c for c in effects if isinstance(c, NotificationCommand) and c.type.value == "out_for_delivery")
    assert (out.estimated_delivery, out.estimate_source) == (tuesday, "carrier")
    assert (state.packages["P1"].estimated_delivery, state.packages["P1"].estimate_source) == (tuesday, "carrier")
    # A carrier whose dates ran a day late dates this package Thursday, after the promise: that
    # date is weighed as the carrier's (estimate_after_promise), not moved back within the promise.
    late, _ = apply_with(young_level(carrier_misses_by(-1, lead=3)), [
        placed(), shipped(), scan(S.in_transit, 2 * HOUR, estimated_delivery=date(2026, 11, 5))])
    assert (late.packages["P1"].estimated_delivery, late.packages["P1"].estimate_source) == \
        (date(2026, 11, 5), "carrier")


@given(st.integers(-3, 3), st.integers(0, 3), st.integers(0, 6), st.integers(0, 8), st.booleans())
def test_a_corrected_carrier_date_is_the_carriers_moved_by_its_usual_miss_never_past_nor_after_the_promise(
        miss: int, lead: int, today_offset: int, promise_offset: int, promised: bool) -> None:
    from models.transit import LEADS, corrected_carrier_date

    today = MONDAY + timedelta(days=today_offset)
    carrier_date = today + timedelta(days=lead)
    promise = MONDAY + timedelta(days=promise_offset) if promised else None
    model = lane([0, 1], carrier_misses=carrier_misses_by(miss, lead=lead))
    moved = corrected_carrier_date(model, carrier_date, today, promise)
    expected = max(carrier_date + timedelta(days=miss), today)
    if miss == 0 or expected == carrier_date or (promise is not None and max(expected, carrier_date) > promise):
        assert moved is None
    else:
        assert moved == expected and moved >= today and (promise is None or moved <= promise)
    assert lead < LEADS and corrected_carrier_date(None, carrier_date, today, promise) is None


def test_predicted_late_opens_for_ops_while_there_is_time_and_closes_at_delivery():
    # Most deliveries on this lane take 4 working days: promised Wednesday, likely Friday.
    models = models_with([0, 1, 1, 2, 36])
    state, effects = apply_with(models, [placed(), shipped(), scan(S.in_transit, 2 * HOUR)])
    opened = [a for a in effects if isinstance(a, Alert) and a.state == "open"]
    assert [(a.alert_kind, a.package_id) for a in opened] == [(AlertKind.predicted_late, "P1")]
    assert opened[0].at < at(2 * 24 * HOUR)  # two days before the promised day even begins
    assert "95% likely" in opened[0].detail  # 38 of 40 took longer than 2 working days
    assert not [c for c in effects if isinstance(c, NotificationCommand) and c.type.value == "delayed"]  # ops only
    state, delivered = apply_with(models, [scan(S.delivered, 30 * HOUR)], state)
    closed = [a for a in delivered if isinstance(a, Alert) and a.state == "closed"]
    assert [(a.alert_kind, a.alert_id) for a in closed] == [(AlertKind.predicted_late, opened[0].alert_id)]


def test_a_package_travelling_longer_than_any_delivery_it_knows_keeps_its_predicted_late_open():
    models = models_with([0, 1, 1, 2, 36])  # promised Wednesday; the slowest took 4 working days
    state, effects = apply_with(models, [placed(), shipped(), scan(S.in_transit, 2 * HOUR)])
    # The next Tuesday, still travelling: no delivery on the lane took that long (no estimate).
    state, later = apply_with(models, [scan(S.in_transit, 8 * 24 * HOUR)], state)
    assert state.packages["P1"].model_estimate is None
    state, delivered = apply_with(models, [scan(S.delivered, 9 * 24 * HOUR)], state)
    changes = [(a.state, a.alert_id) for a in effects + later + delivered
               if isinstance(a, Alert) and a.alert_kind is AlertKind.predicted_late]
    assert [c for c, _ in changes] == ["open", "closed"] and len({i for _, i in changes}) == 1
    assert [a for a in later if isinstance(a, Alert)] == []  # closed by the delivery, not before


def two_day_threshold(threshold: float | None) -> Thresholds:
    """The defaults with two-day's own predicted_late threshold set (None: the global 0.8)."""
    from models.thresholds import ServiceLevel

    defaults = Thresholds()
    two_day = defaults.level(ServiceLevel.two_day)
    return defaults.model_copy(update={"service_levels": {
        **defaults.service_levels,
        ServiceLevel.two_day: two_day.model_copy(update={"predicted_late_probability": threshold})}})


def test_a_level_with_its_own_predicted_late_threshold_hears_of_a_less_likely_delay():
    models = models_with([0, 5, 5, 30])  # promised Wednesday: 75% likely after it
    events = [placed(), shipped(), scan(S.in_transit, 2 * HOUR)]  # a two-day order
    at_global = two_day_threshold(None)
    state, effects = apply_with(models, events, rules=at_global)
    assert state.packages["P1"].late_probability == 0.75 and at_global.late_threshold("two_day") == 0.8
    assert [a for a in effects if isinstance(a, Alert) and a.alert_kind is AlertKind.predicted_late] == []
    # Two-day's own 0.7 (the default, measured in make quality): ops hear of it.
    _, effects = apply_with(models, events)
    assert [(a.alert_kind, a.state) for a in effects if isinstance(a, Alert)] == [(AlertKind.predicted_late, "open")]


def test_a_probability_hovering_at_the_threshold_keeps_one_predicted_late_open():
    # 95% likely late, then 75% (below a 0.8 threshold, within the margin), then 60%: one
    # alert, open until the probability clearly fell.
    rules = two_day_threshold(0.8)
    likely, hovering, recovered = models_with([0, 1, 1, 2, 36]), models_with([0, 5, 5, 30]), \
        models_with([0, 8, 8, 24])
    state, effects = apply_with(likely, [placed(), shipped(), scan(S.in_transit, 2 * HOUR)], rules=rules)
    state, still = apply_with(hovering, [scan(S.in_transit, 3 * HOUR)], state, rules=rules)
    assert state.packages["P1"].late_probability == 0.75
    state, fell = apply_with(recovered, [scan(S.in_transit, 4 * HOUR)], state, rules=rules)
    changes = [(a.state, a.alert_id) for a in effects + still + fell
               if isinstance(a, Alert) and a.alert_kind is AlertKind.predicted_late]
    assert [c for c, _ in changes] == ["open", "closed"] and len({i for _, i in changes}) == 1
    assert [a for a in still if isinstance(a, Alert)] == []


def route_cells(by_hour: dict[int, int]) -> list[float]:
    return [float(by_hour.get(hour, 0)) for hour in range(ROUTE_CELLS)]


def test_not_out_for_delivery_by_an_hour_most_routes_have_left_is_likely_late():
    from models.transit import not_out_for_delivery_by

    # 40 deliveries: routes left at 7 (30) and 8 (10). A package 20% likely late when the
    # promised day begins: by 8 a quarter of the day's deliveries were not out yet (48% late),
    # by 9 none of 40 (91%: one delivery more than seen is counted as a later route).
    model = lane([0, 30, 8, 2], out_for_delivery_hours=route_cells({7: 30, 8: 10}))
    assert not_out_for_delivery_by(model, 0.2, threshold=0.8, min_deliveries=20) == 9
    assert not_out_for_delivery_by(model, 0.2, threshold=0.95, min_deliveries=20) is None  # 91% is short
    # Likely late already by the history: the rule still waits for the routes to leave (by 8
    # a quarter of them had not).
    assert not_out_for_delivery_by(model, 0.85, threshold=0.8, min_deliveries=20) == 9
    assert not_out_for_delivery_by(model, 0.2, threshold=0.8, min_deliveries=50) is None  # too few deliveries
    # A carrier that often delivers without an out-for-delivery scan says little by its absence.
    unscanned = lane([0, 30, 8, 2], out_for_delivery_hours=route_cells({7: 20, 8: 5, ROUTE_HOURS: 15}))
    assert not_out_for_delivery_by(unscanned, 0.2, threshold=0.8, min_deliveries=20) is None


@given(st.lists(st.integers(0, 50), min_size=ROUTE_CELLS, max_size=ROUTE_CELLS), st.floats(0, 1), st.floats(0, 1),
       st.floats(0.5, 1))
def test_a_likelier_late_package_is_never_flagged_later_in_the_morning(cells, prior, other, threshold):
    from models.transit import not_out_for_delivery_by

    model = lane([0, 30, 8, 2], out_for_delivery_hours=[float(c) for c in cells])
    low, high = sorted((prior, other))
    at_low = not_out_for_delivery_by(model, low, threshold, min_deliveries=1)
    at_high = not_out_for_delivery_by(model, high, threshold, min_deliveries=1)
    if at_low is not None:
        assert at_high is not None and at_high <= at_low
        # By then at least the threshold's share of the day's deliveries had left on a route.
        assert sum(cells[:at_low]) / (sum(cells) + 1) >= threshold - 1e-9 or sum(cells) == 0


ROUTES_AT_7_AND_8 = route_cells({7: 30, 8: 10})
WEDNESDAY_NINE = 2 * 24 * HOUR + HOUR  # T0 is Monday 8:00 UTC, the customer's zone
ALLOWANCE = 30  # minutes: the feed allowance before any feed delay was measured


def route_models(counts: list[int], routes: list[float] = ROUTES_AT_7_AND_8) -> LaneModels:
    return LaneModels().updated(LaneModelsUpdated(models=[lane(counts, out_for_delivery_hours=routes)]))


def route_alerts(effects: list) -> list[tuple[str, str]]:
    return [(a.state, a.alert_id) for a in effects if isinstance(a, Alert) and a.alert_kind is AlertKind.predicted_late]


def test_a_package_not_out_for_delivery_on_the_promised_morning_opens_predicted_late_until_it_leaves():
    # Promised Wednesday; most of the lane's deliveries take one working day, 2 of 40 three. On
    # Monday 5% likely late: nothing for ops. Still travelling Wednesday at 9:00, when every
    # route of the lane has left: likely late, with the day still ahead to act.
    models = route_models([0, 30, 8, 2])
    state, effects = apply_with(models, [placed(), shipped(), scan(S.in_transit, 2 * HOUR)])
    assert route_alerts(effects) == []
    assert state.packages["P1"].not_out_for_delivery_by == at(WEDNESDAY_NINE)
    state, _ = apply_with(models, [tick(2 * HOUR + 36 * HOUR)], state)  # the stale deadline
    assert state.next_deadline == at(40 * HOUR)  # Tuesday, the date told, is over: told Wednesday
    state, _ = apply_with(models, [tick(40 * HOUR)], state)
    # No scan comes when no route leaves: a tick does, once the feed could have shown the route.
    assert state.next_deadline == at(WEDNESDAY_NINE + ALLOWANCE)
    state, before = apply_with(models, [tick(WEDNESDAY_NINE + ALLOWANCE - 1)], state)
    state, opened = apply_with(models, [tick(WEDNESDAY_NINE + ALLOWANCE)], state)
    assert route_alerts(before) == []
    (alert,) = [a for a in opened if isinstance(a, Alert) and a.alert_kind is AlertKind.predicted_late]
    assert alert.state == "open" and "not out for delivery by 09:00" in alert.detail
    assert not [c for c in opened if isinstance(c, NotificationCommand) and c.type.value == "delayed"]  # ops only
    # Routes learned later in the day do not take back what was said; the route leaving closes it.
    later_routes = route_models([0, 30, 8, 2], route_cells({11: 30, 12: 10}))
    state, later = apply_with(later_routes, [scan(S.in_transit, WEDNESDAY_NINE + ALLOWANCE + 10)], state)
    assert route_alerts(later) == []
    state, left = apply_with(models, [scan(S.out_for_delivery, WEDNESDAY_NINE + ALLOWANCE + 20)], state)
    assert route_alerts(left) == [("closed", alert.alert_id)]


def test_the_route_rule_keeps_its_own_threshold_when_ops_lower_the_models():
    """Ops may hear of likely-late packages earlier (a lower model threshold) without moving
    the route rule, whose customer notice was measured at its own threshold."""
    models = route_models([0, 30, 8, 2])
    events = [placed(), shipped(), scan(S.in_transit, 2 * HOUR)]
    default, _ = apply_with(models, events)
    lower_model, _ = apply_with(models, events, rules=Thresholds(predicted_late_probability=0.4))
    stricter_route, _ = apply_with(models, events, rules=Thresholds(predicted_late_route_probability=0.95))
    assert default.packages["P1"].not_out_for_delivery_by == at(WEDNESDAY_NINE)
    assert lower_model.packages["P1"].not_out_for_delivery_by == at(WEDNESDAY_NINE)
    assert stricter_route.packages["P1"].not_out_for_delivery_by is None  # 91% by 9:00 is short of 95%


def test_customers_hear_the_route_rule_only_on_the_levels_a_deployment_enables_for_it():
    from models.order import PREDICTED_LATE_REASON

    def delays(rules: Thresholds, counts: list[int]) -> list:
        state, effects = apply_with(route_models(counts), [placed(), shipped(), scan(S.in_transit, 2 * HOUR),
                                                           tick(WEDNESDAY_NINE + ALLOWANCE)], rules=rules)
        return [(c.reason, c.estimated_delivery, c.occurred_at) for c in effects
                if isinstance(c, NotificationCommand) and c.type.value == "delayed"]

    assert delays(Thresholds(), [0, 30, 8, 2]) == []  # off by default: ops only
    assert delays(Thresholds(predicted_late_route_notice_levels=["standard"]), [0, 30, 8, 2]) == []  # not two-day
    route_only = Thresholds(predicted_late_route_notice_levels=["two_day"])
    # Not out for delivery at 9:00 on the promised Wednesday: told, without a date (the model's
    # p50 is still the promised day).
    assert delays(route_only, [0, 30, 8, 2]) == [(PREDICTED_LATE_REASON, None, at(WEDNESDAY_NINE))]
    # The history rule's predicted_late (Monday, 95% likely late) is not the route rule's: ops
    # hear Monday; the customer only once the route rule holds too, on Wednesday at 9:30, once.
    state, effects = apply_with(route_models([0, 1, 1, 2, 36]), [placed(), shipped(), scan(S.in_transit, 2 * HOUR)],
                                rules=route_only)
    assert route_alerts(effects) and not [c for c in effects if isinstance(c, NotificationCommand)
                                          and c.type.value == "delayed"]
    state, _ = apply_with(route_models([0, 1, 1, 2, 36]), [tick(2 * HOUR + 36 * HOUR)], state, rules=route_only)
    assert state.next_deadline == at(WEDNESDAY_NINE + ALLOWANCE)  # the notice's own tick
    ticks = [tick(WEDNESDAY_NINE + ALLOWANCE), tick(WEDNESDAY_NINE + 2 * ALLOWANCE)]
    state, told = apply_with(route_models([0, 1, 1, 2, 36]), ticks, state, rules=route_only)
    assert [(c.reason, c.occurred_at) for c in told if isinstance(c, NotificationCommand)
            and c.type.value == "delayed"] == [(PREDICTED_LATE_REASON, at(WEDNESDAY_NINE))]


def test_a_route_notice_due_when_a_backlog_brings_a_later_scan_first_is_told_at_the_next_tick():
    # Ops' predicted_late is open since Monday (the history rule). The customer's route notice
    # was due at 9:30 on the promised Wednesday; a backlog brings a 9:40 scan (still on the
    # road) before the 9:30 tick: the order asks for a tick at once, not at its next deadline,
    # and is told then.
    from models.order import PREDICTED_LATE_REASON

    route_only = Thresholds(predicted_late_route_notice_levels=["two_day"])
    models = route_models([0, 1, 1, 2, 36])
    state, effects = apply_with(models, [placed(), shipped(), scan(S.in_transit, 2 * HOUR)], rules=route_only)
    assert route_alerts(effects)  # open from Monday
    state, effects = apply_with(models, [scan(S.in_transit, WEDNESDAY_NINE + ALLOWANCE + 10)], state,
                                rules=route_only)
    assert state.next_deadline is not None and state.next_deadline <= at(WEDNESDAY_NINE + ALLOWANCE + 10)
    state, told = apply_with(models, [tick(WEDNESDAY_NINE + ALLOWANCE + 11)], state, rules=route_only)
    assert [(c.reason, c.occurred_at) for c in told if isinstance(c, NotificationCommand)
            and c.type.value == "delayed"] == [(PREDICTED_LATE_REASON, at(WEDNESDAY_NINE))]
    # Told once: nothing left to tick for before the promised day ends.
    assert state.next_deadline is None or state.next_deadline > at(WEDNESDAY_NINE + ALLOWANCE + 11)
    # No tick came at all until after the promised day: no route notice is told then (the
    # promise_missed notice speaks), and none leaves a past time to tick at again and again.
    thursday = 3 * 24 * HOUR
    late, _ = apply_with(models, [placed(), shipped(), scan(S.in_transit, 2 * HOUR), scan(S.in_transit, thursday),
                                  tick(thursday + 1)], rules=route_only)
    late, effects = apply_with(models, [tick(thursday + 2)], late, rules=route_only)
    assert late.next_deadline is None or late.next_deadline > at(thursday + 2)
    assert PREDICTED_LATE_REASON not in [c.reason for c in effects if isinstance(c, NotificationCommand)]


def test_a_route_leaving_after_the_promised_day_closes_the_route_alert():
    models = route_models([0, 30, 8, 2])
    state, _ = apply_with(models, [placed(), shipped(), scan(S.in_transit, 2 * HOUR),
                                   tick(WEDNESDAY_NINE + ALLOWANCE)])
    # Friday: longer on the road than any delivery of the lane (no estimate), then out for delivery.
    state, effects = apply_with(models, [scan(S.out_for_delivery, WEDNESDAY_NINE + 2 * 24 * HOUR)], state)
    assert state.packages["P1"].not_out_for_delivery_by is None
    assert [state for state, _ in route_alerts(effects)] == ["closed"]


def test_a_route_scan_that_arrives_after_a_newer_scan_still_counts():
    models = route_models([0, 30, 8, 2])
    state, _ = apply_with(models, [placed(), shipped(), scan(S.in_transit, 2 * HOUR),
                                   scan(S.in_transit, WEDNESDAY_NINE - 10),
                                   scan(S.out_for_delivery, WEDNESDAY_NINE - 15)])  # older, came later
    assert state.packages["P1"].status is S.in_transit
    state, effects = apply_with(models, [tick(WEDNESDAY_NINE + ALLOWANCE)], state)
    assert route_alerts(effects) == [] and state.packages["P1"].not_out_for_delivery_by is None


def test_no_route_rule_once_the_promised_day_is_over():
    # The carrier's routes are first counted on Thursday, after the promised Wednesday ended:
    # too late to act, so no predicted_late (promise_missed speaks).
    state, _ = apply_with(route_models([0, 30, 8, 2], routes=[]), [placed(), shipped(), scan(S.in_transit, 2 * HOUR)])
    thursday = 3 * 24 * HOUR + 60
    state, effects = apply_with(route_models([0, 30, 8, 2]), [scan(S.in_transit, thursday)], state)
    assert state.packages["P1"].not_out_for_delivery_by is None and route_alerts(effects) == []


def test_a_predicted_late_the_history_opened_stays_one_alert_and_leaves_no_deadline_behind():
    # Likely late from Monday by the history (38 of 39 took longer than the promise allows).
    # Ops only here (the default): the customer's route notice has its own tick (below).
    ops_only = Thresholds()
    state, effects = apply_with(route_models([0, 1, 1, 2, 36]), [placed(), shipped(), scan(S.in_transit, 2 * HOUR)],
                                rules=ops_only)
    (opened,) = route_alerts(effects)
    # Wednesday 10:00, past the route hour: newer history says most arrive in a day; the
    # history rule recovers, the route rule holds the same alert open.
    now = WEDNESDAY_NINE + 60
    start = state
    state, later = apply_with(route_models([0, 30, 8, 2]), [scan(S.in_transit, now)], state, rules=ops_only)
    assert state.packages["P1"].predicted_late_since is None and route_alerts(later) == []
    assert state.next_deadline is None or state.next_deadline > at(now)  # no tick every few seconds
    # With the customer's notice on, the notice past due asks for one tick, which tells it;
    # then nothing is left to tick at.
    route_only = Thresholds(predicted_late_route_notice_levels=["two_day"])
    state, _ = apply_with(route_models([0, 30, 8, 2]), [scan(S.in_transit, now)], start, rules=route_only)
    assert state.next_deadline is not None and state.next_deadline <= at(now)
    state, told = apply_with(route_models([0, 30, 8, 2]), [tick(now + 1)], state, rules=route_only)
    assert [c.type.value for c in told if isinstance(c, NotificationCommand)] == ["delayed"]
    assert state.next_deadline is None or state.next_deadline > at(now + 1)


def test_a_delivered_package_reports_the_hour_its_route_left():
    from models.order import _transit_observed

    state, _ = apply_with(None, [placed(), shipped(), scan(S.in_transit, 2 * HOUR),
                                 scan(S.out_for_delivery, 24 * HOUR - 30), scan(S.delivered, 24 * HOUR + 3 * HOUR)])
    seen = _transit_observed(state, state.packages["P1"])
    assert seen is not None and seen.out_for_delivery_hour == 7  # Tuesday 7:30
    # Out at 7:30 and once more at 10:00 the same day: the route left at 7.
    state, _ = apply_with(None, [placed(), shipped(), scan(S.in_transit, 2 * HOUR),
                                 scan(S.out_for_delivery, 24 * HOUR - 30), scan(S.out_for_delivery, 26 * HOUR),
                                 scan(S.delivered, 27 * HOUR)])
    twice = _transit_observed(state, state.packages["P1"])
    assert twice is not None and twice.out_for_delivery_hour == 7
    # Out for delivery Tuesday, delivered Wednesday without a new route scan: none that day.
    state, _ = apply_with(None, [placed(), shipped(), scan(S.in_transit, 2 * HOUR),
                                 scan(S.out_for_delivery, 24 * HOUR - 30), scan(S.delivered, 48 * HOUR)])
    unscanned = _transit_observed(state, state.packages["P1"])
    assert unscanned is not None and unscanned.out_for_delivery_hour == ROUTE_HOURS
    model = build_model(service_key("ups", "two_day"), 3, [seen, unscanned, observed(MONDAY, date(2026, 11, 3))],
                        WEEKDAYS)
    assert model.out_for_delivery_hours == route_cells({7: 1, ROUTE_HOURS: 1})  # the third did not say


def test_a_package_likely_on_time_opens_no_predicted_late():
    _state, effects = apply_with(models_with([0, 30, 5, 1]), [placed(), shipped(), scan(S.in_transit, 2 * HOUR)])
    assert [a for a in effects if isinstance(a, Alert)] == []


def test_a_delivery_is_observed_for_its_lane_with_how_close_each_source_was():
    # The carrier's dates three days or more ahead came two days early on this lane.
    models = models_with([0, 10, 30, 10], misses=carrier_misses_by(-2, lead=3))
    _state, effects = apply_with(models, [
        placed(), shipped(), scan(S.in_transit, 2 * HOUR, estimated_delivery=date(2026, 11, 6)),
        scan(S.in_transit, 20 * HOUR), scan(S.delivered, 2 * 24 * HOUR + 60)])  # Wednesday
    observations = [e for e in effects if isinstance(e, TransitObserved)]
    assert len(observations) == 1
    seen = observations[0]
    assert (seen.handed_over, seen.delivered, seen.carrier, seen.service_level) == \
        (MONDAY, date(2026, 11, 4), "ups", "two_day")
    assert (seen.compared, seen.carrier_error_days, seen.model_error_days) == (2, 4.0, 0.0)


def test_a_model_update_applies_from_its_place_in_the_batch_on():
    """A replay meets each model version at the same point: events before the update are
    estimated without it, events after it with it, however the batch was cut."""
    update = LaneModelsUpdated(models=[lane([0, 10, 30, 10])])
    first = [placed(), shipped(), scan(S.in_transit, 2 * HOUR)]
    outcome = apply_batch({}, [*first, update, scan(S.in_transit, 3 * HOUR, order_id="ORD-1")])
    assert outcome.changed["ORD-1"].packages["P1"].estimate_source == "model"
    assert outcome.models is not None and list(outcome.models.models) == [service_key("ups", "two_day")]
    before = apply_batch({}, [*first, scan(S.in_transit, 3 * HOUR), update])
    assert before.changed["ORD-1"].packages["P1"].estimate_source == "promise"
    # And one event at a time with the same models in force gives the same state.
    state, _ = run(first)
    state, _ = apply_with(outcome.models, [scan(S.in_transit, 3 * HOUR)], state)
    assert state == outcome.changed["ORD-1"]


def test_time_in_transit_moves_the_models_date_at_a_tick():
    models = models_with([0, 10, 30, 10])
    state, _ = apply_with(models, [placed(), shipped(), scan(S.in_transit, 2 * HOUR)])
    assert state.packages["P1"].model_estimate == date(2026, 11, 4)
    # Thursday, not delivered: only the three-day deliveries are like it now.
    state, effects = apply_with(models, [tick(3 * 24 * HOUR)], state)
    assert state.packages["P1"].model_estimate == date(2026, 11, 5)
    revised = [c for c in effects if isinstance(c, NotificationCommand) and c.type.value in
               ("estimate_revised", "delayed")]
    assert [c.estimated_delivery for c in revised] == [date(2026, 11, 5)]


def test_the_lane_agent_counts_each_delivery_once_and_keeps_a_window():
    from models.transit import LaneWindow, carrier_key, learn

    windows: dict[str, LaneWindow] = {}
    first = [observed(MONDAY, date(2026, 11, 3), package=f"P{i}") for i in range(3)]
    models = learn(windows, first, window=2)
    assert [(m.key, m.version, m.transit_days) for m in models] == [
        (lane_key("ups", "two_day", "FC-A", "US-CA"), 3, [0, 2]),  # the window: the last two
        (service_key("ups", "two_day"), 3, [0, 2])]
    # The order agent replaying its batch after a crash sends the same deliveries again.
    assert learn(windows, first, window=2) == []
    assert windows[carrier_key("ups")].delivered_per_day == [(date(2026, 11, 3), 3)]  # once per package
    later = learn(windows, [observed(MONDAY, date(2026, 11, 5), package="P9")], window=2)
    assert [(m.version, m.transit_days) for m in later] == [(4, [0, 1, 0, 1])] * 2


def test_an_optimistic_carriers_date_is_pushed_back_by_its_usual_miss_at_that_lead():
    from models.transit import carrier_misses, summed

    # On this key the carrier's date, given two days ahead, was a day early at 30 scans; on
    # the day itself it was right (carriers revise late).
    two_days_ahead = [carrier_misses([(MONDAY, date(2026, 11, 4))], date(2026, 11, 5))] * 30
    same_day = [carrier_misses([(date(2026, 11, 5), date(2026, 11, 5))], date(2026, 11, 5))] * 30
    model = lane([0, 10, 30, 10], carrier_misses=summed(two_days_ahead + same_day))
    assert (model.carrier_correction(2), model.carrier_correction(0)) == (1, 0)
    pushed = estimate(model, MONDAY, MONDAY, promised=None, carrier_date=date(2026, 11, 4))
    assert pushed is not None and pushed.estimate == date(2026, 11, 5)
    assert pushed.confidence == 50 / 50  # the share of the lane's deliveries made by that Thursday
    same = estimate(model, MONDAY, date(2026, 11, 5), promised=None, carrier_date=date(2026, 11, 5))
    assert same is not None and same.estimate == date(2026, 11, 5)
    # Too few scans measured at that lead: the carrier's date as it is, not a guess at its habits.
    fresh = estimate(lane([0, 10, 30, 10]), MONDAY, MONDAY, promised=None, carrier_date=date(2026, 11, 6))
    assert fresh is not None and fresh.estimate == date(2026, 11, 6)


def test_a_carrier_date_past_the_promise_counts_in_the_chance_of_missing_it():
    """Promised Wednesday on a lane that keeps it (history alone: 3% late); on Monday a carrier
    whose dates three days ahead were right at 100 scans says next Monday. Ops hear
    predicted_late with that weighed chance; a carrier never measured there moves nothing."""
    history = [0, 20, 10, 1]
    late_date = scan(S.in_transit, 2 * HOUR, estimated_delivery=date(2026, 11, 9))
    state, effects = apply_with(models_with(history, misses=carrier_misses_by(0, lead=3, scans=100)),
                                [placed(), shipped(), late_date])
    predicted = [a for a in effects if isinstance(a, Alert) and a.alert_kind is AlertKind.predicted_late]
    assert [a.state for a in predicted] == ["open"]
    assert state.packages["P1"].late_probability is not None and state.packages["P1"].late_probability > 0.95
    unmeasured, effects = apply_with(models_with(history), [placed(), shipped(), late_date])
    assert [a for a in effects if isinstance(a, Alert) and a.alert_kind is AlertKind.predicted_late] == []
    assert unmeasured.packages["P1"].late_probability == round(1 / 31, 3)


def test_ops_hear_of_a_late_carrier_date_at_a_lead_only_the_carriers_other_levels_measured():
    """Promised Wednesday on a two-day lane that keeps it (history alone: 3% late); on Monday
    the carrier says next Monday, three days ahead, a lead its two-day dates rarely have. Its
    standard dates were right that far ahead at 100 scans (one system dates every level), so
    ops hear predicted_late; the customer's notice is still held until this level measured it."""
    from models.order import DELAY_REASONS

    history = [0, 20, 10, 1]
    late_date = scan(S.in_transit, 2 * HOUR, estimated_delivery=date(2026, 11, 9))
    standard = lane([0, 0, 10, 20, 10], key=service_key("ups", "standard"),
                    carrier_misses=carrier_misses_by(0, lead=3, scans=100))
    models = LaneModels().updated(LaneModelsUpdated(models=[lane(history), standard]))
    state, effects = apply_with(models, [placed(), shipped(), late_date])
    predicted = [a.state for a in effects if isinstance(a, Alert) and a.alert_kind is AlertKind.predicted_late]
    assert predicted == ["open"]
    warned = DELAY_REASONS[AlertKind.estimate_after_promise]
    assert [c for c in effects if isinstance(c, NotificationCommand) and c.reason == warned] == []
    # Without the other level's measure only the lane's history speaks: no alert.
    _state, effects = apply_with(models_with(history), [placed(), shipped(), late_date])
    assert [a for a in effects if isinstance(a, Alert) and a.alert_kind is AlertKind.predicted_late] == []
    # Two days ahead a two-day level gets dates every day: its own misses speak, or none.
    standard_two_ahead = lane([0, 0, 10, 20, 10], key=service_key("ups", "standard"),
                              carrier_misses=carrier_misses_by(0, lead=2, scans=100))
    on_tuesday = scan(S.in_transit, 26 * HOUR, estimated_delivery=date(2026, 11, 5))  # Thursday
    _state, effects = apply_with(LaneModels().updated(LaneModelsUpdated(models=[lane(history), standard_two_ahead])),
                                 [placed(), shipped(), on_tuesday])
    assert [a for a in effects if isinstance(a, Alert) and a.alert_kind is AlertKind.predicted_late] == []


def test_the_carriers_other_levels_never_close_what_the_history_opened():
    """The lane's history makes a Wednesday promise 95% likely missed: ops hear at once. On
    Monday the carrier says Thursday, three days ahead, where only its standard dates were
    measured, and those came two days early: no close on their word. Had it closed, Tuesday's
    scan (two days ahead, measured nowhere) would reopen it under a new id."""
    standard = lane([0, 0, 10, 20, 10], key=service_key("ups", "standard"),
                    carrier_misses=carrier_misses_by(-2, lead=3, scans=100))
    models = LaneModels().updated(LaneModelsUpdated(models=[lane([0, 1, 1, 2, 36]), standard]))
    thursday = date(2026, 11, 5)
    _state, effects = apply_with(models, [placed(), shipped(), scan(S.in_transit, 2 * HOUR),
                                          scan(S.in_transit, 3 * HOUR, estimated_delivery=thursday),
                                          scan(S.in_transit, 26 * HOUR, estimated_delivery=thursday)])
    changes = [a.state for a in effects if isinstance(a, Alert) and a.alert_kind is AlertKind.predicted_late]
    assert changes == ["open"]


def told_dates(effects) -> list[tuple[str, date | None]]:
    return [(c.type.value, c.estimated_delivery) for c in effects
            if isinstance(c, NotificationCommand) and c.estimated_delivery is not None]


def ticked_until(models: LaneModels, state, moment, ticks: list | None = None):
    """The worker's ticks at each deadline before ``moment``; the state and what they produced.
    ``ticks`` gets each tick's time."""
    effects = []
    while state.next_deadline is not None and state.next_deadline < moment:
        if ticks is not None:
            ticks.append(state.next_deadline)
        state, produced = apply_with(models, [tick((state.next_deadline - at(0)).total_seconds() / 60)], state)
        effects.extend(produced)
    return state, effects


@pytest.mark.parametrize(("zone", "hours"), [("", 40), ("America/Los_Angeles", 48)])
def test_a_date_told_that_passes_without_a_scan_moves_on_once_its_day_is_over(zone: str, hours: int):
    """Most of the lane's deliveries take a working day: the customer is told Tuesday. No scan
    comes on Tuesday; once Tuesday is over where the customer lives (event time: the tick's;
    the events start Monday 08:00 UTC), the package has been longer on the road than those
    deliveries and the customer is told Wednesday, before seeing Tuesday pass with nothing new.
    A package delivered on Tuesday needs no such tick."""
    models = models_with([0, 30, 8, 2])
    order = placed().model_copy(update={"delivery_time_zone": zone})
    state, effects = apply_with(models, [order, shipped(), scan(S.in_transit, 2 * HOUR)])
    assert ("shipped", date(2026, 11, 3)) in told_dates(effects)
    tuesday_over = at(hours * HOUR)
    delivered, _ = apply_with(models, [scan(S.delivered, 30 * HOUR)], state)
    state, before = ticked_until(models, state, tuesday_over)
    assert told_dates(before) == []
    assert state.next_deadline == tuesday_over
    state, produced = apply_with(models, [tick(hours * HOUR)], state)
    assert told_dates(produced) == [("estimate_revised", date(2026, 11, 4))]
    assert delivered.next_deadline != tuesday_over


def test_a_package_stuck_past_its_promise_is_not_told_a_new_date_each_day():
    """A lane with a long tail, and a package with no scan after Monday's for two weeks. Past
    the promised Wednesday the delay notice tells the date; no tick at the end of each date
    told moves it on day after day (the lane's tail would, one notice a day), nor is a date
    already over told."""
    from models.detection import end_of_local_day

    models = models_with([0, 30, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5])
    state, _ = apply_with(models, [placed(), shipped(), scan(S.in_transit, 2 * HOUR)])
    state, effects = ticked_until(models, state, at(14 * 24 * HOUR))
    told = [c for c in effects if isinstance(c, NotificationCommand) and c.estimated_delivery is not None]
    assert "delayed" in [c.type.value for c in told]
    promise_over = at(64 * HOUR)  # midnight after Wednesday, UTC here
    later = [c for c in told if c.type.value == "estimate_revised" and c.caused_by_ingested_at > promise_over]
    assert all(c.caused_by_ingested_at != end_of_local_day(c.previous_estimate, "") for c in later)
    assert all(c.estimated_delivery >= c.caused_by_ingested_at.date() for c in told)


def test_a_passed_date_gives_way_to_the_promise_while_the_carriers_late_date_is_weighed():
    """The carrier says Friday for a Wednesday promise on a lane that has not measured its
    dates: ops hear at once, the customer's delay notice is held. Once Tuesday, the date told,
    is over, the customer is told the promise, still ahead, not Friday."""
    models = models_with([0, 30, 8, 2])
    friday = scan(S.in_transit, 2 * HOUR, estimated_delivery=date(2026, 11, 6))
    state, effects = apply_with(models, [placed(), shipped(), friday])
    assert [a.alert_kind for a in effects if isinstance(a, Alert)] == [AlertKind.estimate_after_promise]
    state, before = ticked_until(models, state, at(40 * HOUR))  # midnight after Tuesday, UTC here
    assert told_dates(before) == [] and state.next_deadline == at(40 * HOUR)
    state, produced = apply_with(models, [tick(40 * HOUR)], state)
    assert told_dates(produced) == [("estimate_revised", date(2026, 11, 4))]
    assert [c for c in effects + before + produced
            if isinstance(c, NotificationCommand) and c.type.value == "delayed"] == []


@pytest.mark.parametrize(("zone", "hours"), [("", 16), ("America/Los_Angeles", 24)])
def test_a_held_late_date_is_weighed_again_at_midnight_with_the_models_then_in_force(zone: str, hours: int):
    """The carrier says Thursday for a Wednesday promise on a lane that has not measured its
    dates: the customer's delay notice is held, and the date told is the promise (no tick of
    its own). During Monday the lane's model is measured: the carrier's dates three days ahead
    were right at 400 scans. With no scan in between, the customer hears at Monday's midnight
    where they live (event time; the events start Monday 08:00 UTC), not at the package's next
    scan or when the promise is missed. A lane that never measures them: no look at the held
    date after the promised day, where promise_missed has spoken."""
    from models.detection import end_of_local_day
    from models.order import DELAY_REASONS

    young = models_with([0, 10, 30, 10])
    order = placed().model_copy(update={"delivery_time_zone": zone})
    thursday = scan(S.in_transit, 2 * HOUR, estimated_delivery=date(2026, 11, 5))
    state, effects = apply_with(young, [order, shipped(), thursday])
    warned = DELAY_REASONS[AlertKind.estimate_after_promise]
    assert [c for c in effects if isinstance(c, NotificationCommand) and c.reason == warned] == []
    monday_over = at(hours * HOUR)
    assert state.next_deadline == monday_over
    measured = models_with([0, 10, 30, 10], misses=carrier_misses_by(0, lead=3, scans=400))
    _, produced = ticked_until(measured, state, end_of_local_day(date(2026, 11, 4), zone))
    notices = [c for c in produced if isinstance(c, NotificationCommand) and c.reason == warned]
    assert [(c.caused_by_ingested_at, c.estimated_delivery) for c in notices] == [(monday_over, date(2026, 11, 5))]
    # Never measured: a look at each midnight until Wednesday's, none after it.
    deadlines: list = []
    ticked_until(young, state, at(14 * 24 * HOUR), deadlines)
    midnights = [end_of_local_day(date(2026, 11, 2) + timedelta(days=d), zone) for d in range(14)]
    # Monday's and Tuesday's, and Wednesday's: the promise's own deadline (promise_missed).
    assert [d for d in deadlines if d in midnights] == midnights[:3]


def test_a_standing_carrier_date_at_an_unmeasured_lead_keeps_one_predicted_late_open():
    """Thursday for a Wednesday promise, repeated at each day's scan: three, two and one days
    ahead. The carrier's dates were measured (right) three and one days ahead, never two: on
    Tuesday only the lane's history speaks (3% late), which is no recovery. One alert, open."""
    from models.transit import summed

    misses = summed([carrier_misses_by(0, lead=3, scans=100), carrier_misses_by(0, lead=1, scans=100)])
    models = models_with([0, 20, 10, 1], misses=misses)
    thursday = date(2026, 11, 5)
    state, effects = apply_with(models, [placed(), shipped(),
                                         scan(S.in_transit, 2 * HOUR, estimated_delivery=thursday)])
    for day in (1, 2):
        state, produced = apply_with(models, [scan(S.in_transit, day * 24 * HOUR + 2 * HOUR,
                                                   estimated_delivery=thursday)], state)
        effects += produced
    changes = [(a.state, a.alert_id) for a in effects
               if isinstance(a, Alert) and a.alert_kind is AlertKind.predicted_late]
    assert [c for c, _ in changes] == ["open"]
    assert state.packages["P1"].predicted_late_since is not None


def test_customers_hear_of_predicted_late_only_on_the_levels_a_deployment_enables():
    from models.order import PREDICTED_LATE_REASON, apply

    models = models_with([0, 1, 1, 2, 36])  # 95% likely after Wednesday's promise

    def delays(rules: Thresholds) -> list:
        state, effects = None, []
        for event in [placed(), shipped(), scan(S.in_transit, 2 * HOUR)]:
            state, produced = apply(state, event, rules, models=models)
            effects.extend(produced)
        return [(c.reason, c.estimated_delivery, c.estimate_source) for c in effects
                if isinstance(c, NotificationCommand) and c.type.value == "delayed"]

    assert delays(Thresholds()) == []  # off by default: ops only
    enabled = Thresholds(predicted_late_notice_levels=["two_day"])
    assert delays(enabled) == [(PREDICTED_LATE_REASON, date(2026, 11, 6), "model")]  # Friday, four days


def test_a_carrier_date_after_the_promise_reaches_the_customer_only_where_such_dates_were_late():
    from models.order import DELAY_REASONS

    warned = DELAY_REASONS[AlertKind.estimate_after_promise]
    # Promised Wednesday; on Monday the carrier says Thursday, on Tuesday Friday.
    thursday = scan(S.in_transit, 2 * HOUR, estimated_delivery=date(2026, 11, 5))
    friday = scan(S.in_transit, 26 * HOUR, estimated_delivery=date(2026, 11, 6))

    def told(misses: list[float], rules: Thresholds | None = None) -> tuple[list, list]:
        _state, effects = apply_with(models_with([0, 10, 30, 10], misses=misses),
                                     [placed(), shipped(), thursday, friday], rules=rules)
        alerts = [a.at for a in effects if isinstance(a, Alert) and a.alert_kind is AlertKind.estimate_after_promise
                  and a.state == "open"]
        notices = [c.occurred_at for c in effects if isinstance(c, NotificationCommand) and c.reason == warned]
        # Nor does the late date reach the customer another way while the notice is held.
        revised = [c for c in effects if isinstance(c, NotificationCommand) and c.type.value == "estimate_revised"
                   and c.estimated_delivery is not None and c.estimated_delivery > date(2026, 11, 4)
                   and (not notices or c.caused_by_ingested_at < min(notices))]
        assert revised == []
        return alerts, notices

    # On this lane the carrier's dates three days ahead came a day early at 400 scans: Thursday
    # meant Wednesday, on time. Ops hear at once; the customer only once Friday makes it late
    # (past 0.99: 100 scans leave room for a miss never seen, and hold it).
    pessimistic = carrier_misses_by(-1, lead=3, scans=400)
    assert told(pessimistic) == ([thursday.ingested_at], [friday.occurred_at])
    assert told(carrier_misses_by(-1, lead=3, scans=100)) == ([thursday.ingested_at], [])
    # A carrier whose dates were right there: Thursday is late, told at once.
    assert told(carrier_misses_by(0, lead=3, scans=400)) == ([thursday.ingested_at], [thursday.occurred_at])
    # A lane that has not measured the carrier's dates yet: held (promise_missed speaks once the
    # promised day is over), unless the deployment tells such dates at once, as ops hear them.
    assert told([]) == ([thursday.ingested_at], [])
    assert told([], Thresholds(estimate_after_promise_hold_unmeasured=False)) == \
        ([thursday.ingested_at], [thursday.occurred_at])


def test_a_carrier_date_past_the_promise_weighs_against_the_lanes_history():
    from models.transit import late_given_carrier_date

    wednesday, thursday, friday = date(2026, 11, 4), date(2026, 11, 5), date(2026, 11, 6)
    # Dates that scatter a day either way (60% right): one day past a promise the lane almost
    # always keeps is more likely a wrong date than a late package.
    misses = [carrier_misses_by(-1, lead=3, scans=20), carrier_misses_by(0, lead=3, scans=60),
              carrier_misses_by(1, lead=3, scans=20)]
    scattered = lane([0, 10, 80, 0], carrier_misses=[sum(cells) for cells in zip(*misses, strict=True)])
    one_day = late_given_carrier_date(scattered, MONDAY, MONDAY, wednesday, thursday)
    assert one_day is not None and one_day < 0.5
    # Three working days past it is news: the carrier is never that far off.
    three_days = late_given_carrier_date(scattered, MONDAY, MONDAY, wednesday, date(2026, 11, 9))
    assert three_days is not None and three_days > 0.95
    # Further than any delivery the lane has seen is still possible, not ruled out.
    assert late_given_carrier_date(scattered, MONDAY, MONDAY, wednesday, friday) > one_day
    assert late_given_carrier_date(lane([0, 10, 80, 0]), MONDAY, MONDAY, wednesday, thursday) is None
    # Judged once the promised day is over, or with the package out longer than any delivery
    # and the carrier's date long past: an answer, not a division by nothing.
    assert late_given_carrier_date(scattered, MONDAY, date(2026, 11, 12), wednesday, thursday) == 1.0
    # Through the rules: Monday's scan dated Thursday, read ten days later (a backlog).
    late_scan = scan(S.in_transit, 2 * HOUR, estimated_delivery=thursday, ingested_at=at(10 * 24 * HOUR))
    state, _effects = apply_with(LaneModels().updated(LaneModelsUpdated(models=[scattered])),
                                 [placed(), shipped(), late_scan])
    assert state.packages["P1"].carrier_current_estimate == thursday
    # A placeholder date years out is weighed within weeks, not walked day by day.
    assert late_given_carrier_date(scattered, MONDAY, MONDAY, wednesday, date(2199, 1, 1)) == 1.0


def test_versions_come_from_the_topic_offsets_so_a_lost_window_still_publishes_newer_ones():
    from models.transit import LaneWindow, learn

    windows: dict[str, LaneWindow] = {}
    models = learn(windows, [observed(MONDAY, date(2026, 11, 3), package=f"P{i}") for i in range(3)],
                   window=200, offsets=[300, 301, 302])
    assert {m.version for m in models} == {302}
    known = LaneModels().updated(LaneModelsUpdated(models=models))
    # The lane-model agent's stored windows are lost: it starts afresh from the next delivery.
    fresh = learn({}, [observed(MONDAY, date(2026, 11, 4), package="P9")], window=200, offsets=[303])
    after = known.updated(LaneModelsUpdated(models=fresh))
    assert after.models[service_key("ups", "two_day")].version == 303  # accepted, not frozen at 302


def test_thousands_of_lanes_go_out_in_records_a_broker_accepts():
    from models.codec import encode
    from models.transit import RECORD_MODELS, in_records

    models = [lane([0, 10, 30, 10], key=lane_key("ups", "two_day", f"FC-{n}", "US-CA"))
              for n in range(2 * RECORD_MODELS + 1)]
    parts = in_records(models)
    assert [len(p) for p in parts] == [RECORD_MODELS, RECORD_MODELS, 1]
    assert max(len(encode(LaneModelsUpdated(models=p))) for p in parts) < 512 * 1024


def test_a_backlog_of_old_scans_is_estimated_as_of_when_they_were_scanned():
    """Scans read two days late (an outage, then a backlog) count the package's time in
    transit to their own time: the package is not days longer on the road than when scanned,
    and ops get no predicted_late for the outage."""
    models = models_with([0, 30, 1, 5])  # mostly one working day; a few take three
    on_time, _ = apply_with(models, [placed(), shipped(), scan(S.in_transit, 2 * HOUR)])
    late_scan = scan(S.in_transit, 2 * HOUR).model_copy(update={"ingested_at": at(2 * 24 * HOUR)})
    backlog, effects = apply_with(models, [placed(), shipped(), late_scan])
    assert backlog.packages["P1"].model_estimate == on_time.packages["P1"].model_estimate == date(2026, 11, 3)
    assert [a for a in effects if isinstance(a, Alert)] == []


def test_a_lane_model_record_holding_nonsense_is_refused_whole_when_read():
    import msgspec
    import pytest

    from models.codec import decode_lane_models, encode

    good = msgspec.json.decode(encode(LaneModelsUpdated(models=[lane([0, 10, 30, 10])])))
    assert decode_lane_models(msgspec.json.encode(good)).models[0].transit_days == [0, 10, 30, 10]
    nonsense = [("transit_days", [0, -10, 30]), ("working_weekdays", []), ("working_weekdays", [7]),
                ("carrier_misses", [1.0] * 100), ("carrier_misses", [1.0] * 9), ("version", -1),
                ("carrier_error_days", -0.5)]
    for name, value in nonsense:
        damaged = {**good, "models": [{**good["models"][0], name: value}]}
        # Refused (a dead letter of the order agent), not applied to every order of a partition:
        # counting working days on a weekday 7 would never end.
        with pytest.raises(msgspec.ValidationError):
            decode_lane_models(msgspec.json.encode(damaged))


def test_a_package_handed_over_in_the_afternoon_is_estimated_from_the_afternoons_deliveries():
    # Morning hand-overs arrive the next working day, afternoon ones a day later.
    seen = [TransitObserved(package_id=f"AM{n}", order_id="O", carrier="ups", service_level="one_day", origin="",
                            destination_region="", handed_over=MONDAY, delivered=MONDAY + timedelta(days=1),
                            handed_over_afternoon=False) for n in range(20)]
    seen += [TransitObserved(package_id=f"PM{n}", order_id="O", carrier="ups", service_level="one_day", origin="",
                             destination_region="", handed_over=MONDAY, delivered=MONDAY + timedelta(days=2),
                             handed_over_afternoon=True) for n in range(20)]
    model = build_model(service_key("ups", "one_day"), 40, seen, WEEKDAYS)
    by_half = {afternoon: estimate(model, MONDAY, MONDAY, promised=None, afternoon=afternoon)
               for afternoon in (False, True, None)}
    assert {half: found.estimate for half, found in by_half.items() if found} == {
        False: date(2026, 11, 3), True: date(2026, 11, 4), None: date(2026, 11, 3)}
    assert by_half[True] is not None and by_half[True].confidence == 1.0
    # Too few afternoon hand-overs yet: all deliveries speak.
    few = build_model(service_key("ups", "one_day"), 25, seen[:20] + seen[20:25], WEEKDAYS)
    assert few.transit_days_for(True) == few.transit_days


def test_a_customer_hears_lost_only_after_a_silence_longer_than_any_the_lane_came_back_from():
    # Two-day service: ops presume a package lost after 168 h without a scan. On this lane a
    # delivered package was once silent for 200 h and still arrived.
    models = LaneModels().updated(LaneModelsUpdated(models=[lane([0, 10, 30, 10], longest_silence_hours=200)]))
    last_scan = 2 * HOUR

    def lost(models: LaneModels | None, *ticks: float) -> tuple[list, list, object]:
        state, effects = apply_with(models, [placed(), shipped(), scan(S.in_transit, last_scan),
                                             *[tick(last_scan + t * HOUR) for t in ticks]])
        opened = [a.at for a in effects if isinstance(a, Alert) and a.alert_kind is AlertKind.presumed_lost]
        told = [c.occurred_at for c in effects if isinstance(c, NotificationCommand) and c.reason == "lost"]
        return opened, told, state.next_deadline

    # (The tick half an hour later tells the missed promise, after the feed's allowance.)
    opened, told, next_look = lost(models, 169, 169.5)
    assert opened == [at(last_scan + 169 * HOUR)] and told == []  # ops hear at 168 h; the customer waits
    assert next_look == at(last_scan + 200 * HOUR + 30)  # past 200 h, after the feed's allowance
    assert lost(models, 169, 200)[1] == [] and lost(models, 169, 200.6)[1] != []
    # Without a lane model: "lost" after two-day service's minimum, eight days, and the allowance.
    assert lost(None, 169, 169.5)[1] == [] and lost(None, 169, 192.6)[1] != []


def test_a_silence_the_carrier_came_back_from_on_another_service_level_holds_the_lost_notice():
    # A two-day order; the level's own eight-day minimum set aside, so the threshold (168 h)
    # would tell the customer. UPS's standard packages came back from 250 h of silence, another
    # carrier's from 320 h.
    rules = parse_thresholds("[service_levels.two_day]\nlost_notice_min_hours = 0\n")
    ups_standard = lane([0, 10, 30, 10], key=service_key("ups", "standard"), longest_silence_hours=250)
    fedex = lane([0, 10, 30, 10], key=service_key("fedex", "two_day"), longest_silence_hours=320)
    last_scan = 2 * HOUR

    def told(models: LaneModels, hours: float) -> bool:
        _, effects = apply_with(models, [placed(), shipped(), scan(S.in_transit, last_scan),
                                         tick(last_scan + 169 * HOUR), tick(last_scan + hours * HOUR)], rules=rules)
        return any(isinstance(c, NotificationCommand) and c.reason == "lost" for c in effects)

    assert told(LaneModels().updated(LaneModelsUpdated(models=[fedex])), 169.6)  # not UPS: at the threshold
    carrier_wide = LaneModels().updated(LaneModelsUpdated(models=[ups_standard, fedex]))
    assert not told(carrier_wide, 249) and told(carrier_wide, 250.6)
    # At most twice the threshold, however long the odd package's silence.
    odd = lane([0, 10, 30, 10], key=service_key("ups", "standard"), longest_silence_hours=2000)
    assert told(LaneModels().updated(LaneModelsUpdated(models=[odd])), 336.6)


def test_a_delivered_package_reports_its_longest_silence_after_acceptance():
    from models.order import _transit_observed

    state, _ = apply_with(None, [placed(), shipped(), scan(S.in_transit, 2 * HOUR), scan(S.in_transit, 30 * HOUR),
                                 scan(S.out_for_delivery, 40 * HOUR), scan(S.delivered, 41 * HOUR)])
    seen = _transit_observed(state, state.packages["P1"])
    assert seen is not None and seen.longest_silence_hours == 28
    # A week waiting at a pickup point is not a silence the carrier came back from.
    state, _ = apply_with(None, [placed(), shipped(), scan(S.in_transit, 2 * HOUR),
                                 scan(S.available_for_pickup, 20 * HOUR), scan(S.delivered, 200 * HOUR)])
    pickup = _transit_observed(state, state.packages["P1"])
    assert pickup is not None and pickup.longest_silence_hours == 18
    model = build_model(service_key("ups", "two_day"), 2, [seen, observed(MONDAY, date(2026, 11, 3))], WEEKDAYS)
    assert model.longest_silence_hours == 28


def test_a_carriers_usual_silence_is_the_one_nine_in_ten_of_its_delivered_packages_stayed_within():
    def silent(hours: float, n: int) -> TransitObserved:
        found = observed(MONDAY, date(2026, 11, 4), package=f"P{n}")
        found.longest_silence_hours = hours
        return found

    # 45 packages came back from at most 30 h without a scan, 5 from four days (really silent):
    # the few long ones do not set what is usual.
    seen = [silent(10 + n * 20 / 44, n) for n in range(45)] + [silent(96, 45 + n) for n in range(5)]
    model = build_model(service_key("ups", "two_day"), 50, seen, WEEKDAYS)
    assert model.usual_silence_hours == 30 and model.longest_silence_hours == 96
    # Fewer than 50 deliveries: not measured yet. Nor do packages with no silence measured (0 h:
    # no two scans after acceptance, or an older worker's record) count, or set it at 0.
    assert build_model(service_key("ups", "two_day"), 49, seen[1:], WEEKDAYS).usual_silence_hours is None
    unmeasured = [silent(0, 100 + n) for n in range(450)]
    assert build_model(service_key("ups", "two_day"), 99, seen[1:] + unmeasured, WEEKDAYS).usual_silence_hours is None
    assert build_model(service_key("ups", "two_day"), 99, seen + unmeasured, WEEKDAYS).usual_silence_hours == 30
    models = LaneModels().updated(LaneModelsUpdated(models=[model]))
    assert models.usual_silence_hours("ups", "two_day") == 30
    assert models.usual_silence_hours("ups", "standard") is None


@given(st.lists(st.floats(min_value=0, max_value=2000, allow_nan=False), max_size=300))
def test_the_usual_silence_is_a_measured_one_that_nine_in_ten_stay_within(silences: list[float]):
    from models.transit import usual_silence

    found = usual_silence(silences)
    measured = [hours for hours in silences if hours > 0]
    if len(measured) < 50:
        assert found is None
        return
    assert found in measured
    assert sum(hours <= found for hours in measured) >= 0.9 * len(measured)
    assert sum(hours < found for hours in measured) < 0.9 * len(measured)  # and no longer than that


def test_stale_tracking_waits_for_a_silence_half_again_as_long_as_the_carriers_usual():
    # The two-day order's configured stale threshold is 36 h; UPS's two-day packages usually
    # go 40 h without a scan and arrive: ops hear of a silence at 60 h, not at 36 h.
    last_scan = 2 * HOUR

    def stale_at(models: LaneModels | None, rules: Thresholds | None = None) -> list:
        _, effects = apply_with(models, [placed(), shipped(), scan(S.in_transit, last_scan),
                                         *[tick(last_scan + h * HOUR) for h in range(30, 200, 6)]], rules=rules)
        return [a.at for a in effects if isinstance(a, Alert) and a.alert_kind is AlertKind.in_transit_stale
                and a.state == "open"]

    usual = LaneModels().updated(LaneModelsUpdated(models=[lane([0, 10, 30, 10], usual_silence_hours=40)]))
    assert stale_at(usual) == [at(last_scan + 60 * HOUR)]
    assert stale_at(None) == [at(last_scan + 36 * HOUR)]  # not measured (own estimate off)
    assert stale_at(usual, parse_thresholds("stale_learned_factor = 0\n")) == [at(last_scan + 36 * HOUR)]
    # Another carrier's or level's silences say nothing about UPS two-day.
    other = lane([0, 10, 30, 10], key=service_key("ups", "standard"), usual_silence_hours=40)
    assert stale_at(LaneModels().updated(LaneModelsUpdated(models=[other]))) == [at(last_scan + 36 * HOUR)]
    # Never later than presumed_lost (168 h on two-day), however silent the carrier usually is.
    slow = LaneModels().updated(LaneModelsUpdated(models=[lane([0, 10, 30, 10], usual_silence_hours=150)]))
    assert stale_at(slow) == [at(last_scan + 168 * HOUR)]
    # Measured, it replaces a carrier's configured hours too.
    assert stale_at(usual, parse_thresholds("[carriers.ups]\nstale_after_hours = 96\n")) == [at(last_scan + 60 * HOUR)]


def test_a_silence_is_judged_by_the_newest_measure_until_its_alert_opens():
    # Scanned while UPS two-day packages usually went 20 h silent (stale at 30 h); by 25 h a
    # newer model says 40 h, as a young key's slow packages came back: stale at 60 h.
    last_scan = 2 * HOUR

    def usually(hours: float) -> LaneModels:
        return LaneModels().updated(LaneModelsUpdated(models=[lane([0, 10, 30, 10], usual_silence_hours=hours)]))

    state, _ = apply_with(usually(20), [placed(), shipped(), scan(S.in_transit, last_scan)])
    assert state.next_deadline == at(last_scan + 30 * HOUR)
    state, effects = apply_with(usually(40), [tick(last_scan + 25 * HOUR), tick(last_scan + 31 * HOUR)], state)
    assert not [a for a in effects if isinstance(a, Alert) and a.alert_kind is AlertKind.in_transit_stale]
    assert state.next_deadline == at(last_scan + 60 * HOUR)


def test_a_new_model_version_neither_moves_nor_reopens_an_open_stale_alert():
    last_scan = 2 * HOUR

    def usually(hours: float) -> LaneModels:
        return LaneModels().updated(LaneModelsUpdated(models=[lane([0, 10, 30, 10], usual_silence_hours=hours)]))

    def stale(effects: list, state: str) -> list:
        return [a.at for a in effects if isinstance(a, Alert) and a.alert_kind is AlertKind.in_transit_stale
                and a.state == state]

    state, effects = apply_with(usually(40), [placed(), shipped(), scan(S.in_transit, last_scan),
                                              tick(last_scan + 59 * HOUR), tick(last_scan + 60 * HOUR)])
    assert stale(effects, "open") == [at(last_scan + 60 * HOUR)]
    # The carrier's packages now usually go 100 h without a scan: the open alert stays as it is
    # (not closed, not opened again later), and no deadline already past is left to tick at.
    state, later = apply_with(usually(100), [tick(last_scan + 70 * HOUR), tick(last_scan + 80 * HOUR)], state)
    assert stale(later, "open") == stale(later, "closed") == []
    assert state.next_deadline is None or state.next_deadline > at(last_scan + 80 * HOUR)
    # A shorter one neither, and it leaves no past deadline behind.
    state, shorter = apply_with(usually(10), [tick(last_scan + 85 * HOUR)], state)
    assert stale(shorter, "open") == stale(shorter, "closed") == []
    assert state.next_deadline is None or state.next_deadline > at(last_scan + 85 * HOUR)
    # The same scan again from another feed ends no silence: the alert stays open as it was.
    again = scan(S.in_transit, last_scan, event_id="shippo-again", source="shippo",
                 ingested_at=at(last_scan + 86 * HOUR))
    state, resent = apply_with(usually(100), [again, tick(last_scan + 87 * HOUR)], state)
    assert stale(resent, "open") == stale(resent, "closed") == []
    assert state.next_deadline is None or state.next_deadline > at(last_scan + 87 * HOUR)
    # A newer scan learned late (scanned at 12 h, read at 88 h): its own silence is past the
    # deadline too, so the alert stays open, and no past deadline is left to tick at.
    late = scan(S.in_transit, last_scan + 10 * HOUR, ingested_at=at(last_scan + 88 * HOUR))
    state, backlog = apply_with(usually(40), [late, tick(last_scan + 89 * HOUR)], state)
    assert stale(backlog, "closed") == []
    assert state.next_deadline is None or state.next_deadline > at(last_scan + 89 * HOUR)
    # The next scan closes it and takes the measure in force then: 1.5 x 100 h.
    next_scan = last_scan + 90 * HOUR
    state, after = apply_with(usually(100), [scan(S.in_transit, next_scan), tick(next_scan + 149 * HOUR)], state)
    assert stale(after, "closed") != [] and stale(after, "open") == []
    _, reopened = apply_with(usually(100), [tick(next_scan + 150 * HOUR)], state)
    assert stale(reopened, "open") == [at(next_scan + 150 * HOUR)]


# --- a young lane counts the packages still travelling (Kaplan-Meier) -------------------------

def started(package: str, handed_over: date = MONDAY, afternoon: bool | None = False):
    from models.transit import TransitStarted

    return TransitStarted(package_id=package, order_id="O", carrier="ups", service_level="two_day", origin="FC-A",
                          destination_region="US-CA", handed_over=handed_over, handed_over_afternoon=afternoon)


def test_a_young_lane_whose_fast_packages_came_back_first_is_not_estimated_from_them_alone():
    """Ten packages handed over on Monday; by Thursday the two fast ones came Tuesday and eight
    still travel. The deliveries alone say Tuesday; the lane says "not before Wednesday"."""
    from models.transit import learn

    thursday = MONDAY + timedelta(days=3)
    fast = [observed(MONDAY, MONDAY + timedelta(days=1), package=f"P{n}") for n in range(2)]
    for travelling in ([], [started(f"P{n}") for n in range(10)]):
        windows: dict = {}
        # A carrier's other package delivered on Thursday: the day the lane has reached.
        today = observed(thursday - timedelta(days=7), thursday, package="OTHER")
        today.service_level = "one_day"
        models = {m.key: m for m in learn(windows, [*travelling, *fast, today], window=200)}
        model = models[lane_key("ups", "two_day", "FC-A", "US-CA")]
        found = estimate(model, MONDAY, MONDAY, promised=None)
        assert found is not None
        if travelling:
            assert model.deliveries == pytest.approx(2)  # still weighs as two deliveries when blended
            assert found.estimate == MONDAY + timedelta(days=2)
            # Only the two delivered came by then: the eight still travelling are not counted as
            # if they had.
            assert found.confidence == pytest.approx(0.2)
        else:
            assert found.estimate == MONDAY + timedelta(days=1)


def test_kaplan_meier_counts_what_still_travels_and_stops_at_the_longest_delivery():
    from models.transit import kaplan_meier

    seen = [(MONDAY, MONDAY + timedelta(days=d)) for d in (1, 1, 2, 3, 3, 3)]
    assert kaplan_meier(seen, [], WEEKDAYS) == (pytest.approx(histogram(seen, WEEKDAYS)), 0.0)
    # One package out for four days, longer than any delivery: half the lane's packages that
    # took more than a day took more than two.
    thursday, friday = MONDAY + timedelta(days=3), MONDAY + timedelta(days=4)
    cells, beyond = kaplan_meier(seen[:3], [(MONDAY, friday)], WEEKDAYS)
    assert cells == pytest.approx([0, 1.5, 0.75, 0.75]) and beyond == pytest.approx(0.75)
    # One on its second day, as long as the longest delivery: it may still come today, so it
    # counts half on that day.
    cells, beyond = kaplan_meier(seen[:3], [(MONDAY + timedelta(days=1), thursday)], WEEKDAYS)
    assert cells == pytest.approx([0, 1.5, 1.0, 0.5]) and beyond == pytest.approx(0.5)
    # A lost package forty days out does not put the lane's tail forty days out.
    week = [(MONDAY, MONDAY + timedelta(days=d)) for d in (1, 2, 3) for _ in range(10)]
    lost, _ = kaplan_meier(week, [(MONDAY - timedelta(days=56), friday)], WEEKDAYS)
    assert len(lost) == 5 and sum(lost) == pytest.approx(30)
    assert kaplan_meier([], [(MONDAY, MONDAY)], WEEKDAYS) == ([], 0.0)


def test_a_lane_stops_counting_travelling_packages_once_it_has_enough_deliveries():
    from models.transit import YOUNG_DELIVERIES, LaneWindow, learn

    key = lane_key("ups", "two_day", "FC-A", "US-CA")
    windows: dict[str, LaneWindow] = {}
    learn(windows, [started("LATE"), started("P0")], window=200)
    assert [t[0] for t in windows[key].travelling] == ["LATE", "P0"]
    learn(windows, [observed(MONDAY, MONDAY + timedelta(days=1), package="P0")], window=200)
    assert [t[0] for t in windows[key].travelling] == ["LATE"]  # delivered: no longer at risk
    # A replayed hand-over of a package already delivered is not at risk again.
    assert learn(windows, [started("P0")], window=200) == []
    grown = [observed(MONDAY, MONDAY + timedelta(days=1), package=f"D{n}") for n in range(YOUNG_DELIVERIES)]
    models = {m.key: m for m in learn(windows, grown, window=200)}
    assert windows[key].travelling == []
    assert models[key].transit_days == histogram([(o.handed_over, o.delivered) for o in windows[key].observations],
                                                 ALL_WEEKDAYS)
    # A grown lane ignores hand-overs: no new model version for every package shipped.
    assert learn(windows, [started("NEW")], window=200) == []
    # A window shorter than the young count: grown once full, never young for ever.
    small: dict[str, LaneWindow] = {}
    learn(small, [started("S0"), *[observed(MONDAY, MONDAY + timedelta(days=1), package=f"S{n}") for n in range(1, 4)]],
          window=3)
    assert small[key].travelling == [] and learn(small, [started("S9")], window=3) == []


def test_a_key_that_has_only_seen_hand_overs_is_stored_but_not_sent_to_the_order_partitions():
    from models.transit import RECORD_MODELS, LaneWindow, broadcast, learn

    key = lane_key("ups", "two_day", "FC-A", "US-CA")
    windows: dict[str, LaneWindow] = {}
    models = learn(windows, [started("P0")], window=200)
    assert key in {m.key for m in models} and windows[key].travelling  # its window changed
    assert broadcast(models) == []  # nothing to estimate from: every partition is spared it
    delivered = learn(windows, [observed(MONDAY, MONDAY + timedelta(days=1), package="P0")], window=200)
    assert key in {m.key for part in broadcast(delivered) for m in part}
    # Thousands of lanes go out in several records, none past the broker's message size.
    many = [LaneModel(key=f"lane|ups|two_day|FC-A|US-{n}", version=1, transit_days=[0.0, 1.0])
            for n in range(RECORD_MODELS + 1)]
    assert [len(part) for part in broadcast(many)] == [RECORD_MODELS, 1]


def test_the_order_agent_reports_each_hand_over_once():
    from models.transit import TransitStarted

    _state, effects = apply_with(None, [placed(), shipped(), scan(S.in_transit, 2 * HOUR),
                                        scan(S.in_transit, 3 * HOUR)])
    handed = [e for e in effects if isinstance(e, TransitStarted)]
    assert [(h.package_id, h.carrier, h.service_level, h.handed_over) for h in handed] == \
        [("P1", "ups", "two_day", MONDAY)]
    # No shipment event: the carrier's acceptance scan says it left.
    _state, effects = apply_with(None, [placed(), scan(S.in_transit, 2 * HOUR), scan(S.in_transit, 3 * HOUR)])
    assert [e.package_id for e in effects if isinstance(e, TransitStarted)] == ["P1"]
    # Shipped before the order was known: reported once the order names its lane.
    _state, effects = apply_with(None, [shipped(), scan(S.in_transit, 2 * HOUR), placed()])
    assert [(e.package_id, e.service_level) for e in effects if isinstance(e, TransitStarted)] == \
        [("P1", "two_day")]
    # A carrier clock 40 minutes ahead (within the tolerance; further ahead is refused) does
    # not date a hand-over received Monday 23:40 on Tuesday.
    _state, effects = apply_with(None, [placed(), scan(S.in_transit, 16 * HOUR + 20, ingested_at=at(15 * HOUR + 40))])
    assert [e.handed_over for e in effects if isinstance(e, TransitStarted)] == [MONDAY]


def test_a_hand_over_crosses_the_transit_topic_as_itself():
    from models.codec import decode_transit_observed, encode
    from models.transit import TransitStarted

    record = started("P9", afternoon=True)
    decoded = decode_transit_observed(encode(record))
    assert isinstance(decoded, TransitStarted) and decoded == record
    delivered = observed(MONDAY, MONDAY + timedelta(days=1))
    assert decode_transit_observed(encode(delivered)) == delivered


# --- before any model: the carrier's usual date on the level -----------------------------------

def dated(package: str, lead_days: int, handed_over: date = MONDAY):
    return msgspec.structs.replace(started(package, handed_over), carrier_date=handed_over + timedelta(days=lead_days))


def test_a_young_level_learns_the_carriers_usual_date_from_the_dates_it_gave_its_packages():
    from models.transit import CARRIER_TYPICAL_MIN_DATES, LaneWindow, broadcast, learn

    key = service_key("ups", "two_day")
    windows: dict[str, LaneWindow] = {}
    # Four dated packages are too few to say what is usual.
    models = LaneModels().updated(LaneModelsUpdated(models=learn(
        windows, [dated(f"P{n}", 3) for n in range(CARRIER_TYPICAL_MIN_DATES - 1)], window=200)))
    assert models.models[key].carrier_lead_days
    assert models.carrier_typical("ups", "two_day", MONDAY, MONDAY, promised=None) is None
    found = learn(windows, [dated("P4", 3), *(dated(f"L{n}", 5) for n in range(5))], window=200)
    assert key in {m.key for part in broadcast(found) for m in part}  # no delivery yet, still sent
    assert lane_key("ups", "two_day", "FC-A", "US-CA") not in {m.key for part in broadcast(found) for m in part}
    models = models.updated(LaneModelsUpdated(models=found))
    # Dated 3 days out five times, 5 days out five times: Thursday for a Monday hand-over.
    assert models.carrier_typical("ups", "two_day", MONDAY, MONDAY, promised=None) == MONDAY + timedelta(days=3)
    # Still travelling on Friday: of the dates not passed yet (5 days out), the usual one.
    assert models.carrier_typical("ups", "two_day", MONDAY, MONDAY + timedelta(days=4), promised=None) == \
        MONDAY + timedelta(days=5)
    # After the promise: not the customer's date (the carrier's own late date is weighed first).
    assert models.carrier_typical("ups", "two_day", MONDAY, MONDAY + timedelta(days=4),
                                  promised=MONDAY + timedelta(days=4)) is None
    assert models.carrier_typical("ups", "one_day", MONDAY, MONDAY, promised=None) is None  # nothing learned there
    # One odd package dated three weeks out does not set the date once the usual ones passed.
    models = models.updated(LaneModelsUpdated(models=learn(windows, [dated("ODD", 21)], window=200)))
    assert models.carrier_typical("ups", "two_day", MONDAY, MONDAY + timedelta(days=6), promised=None) is None
    # The same package's date again, a date before its hand-over or months after it: not counted.
    assert learn(windows, [dated("P4", 9)], window=200) == []
    learn(windows, [dated("BEFORE", -1), dated("FAR", 90)], window=200)  # travelling now, not dated
    assert [d[0] for d in windows[key].carrier_dated] == [*(f"P{n}" for n in range(5)),
                                                          *(f"L{n}" for n in range(5)), "ODD"]


def test_a_level_grown_to_its_model_forgets_the_carriers_usual_date():
    from models.transit import YOUNG_DELIVERIES, LaneWindow, learn

    key = service_key("ups", "two_day")
    windows: dict[str, LaneWindow] = {}
    learn(windows, [dated(f"P{n}", 3) for n in range(10)], window=200)
    grown = [observed(MONDAY, MONDAY + timedelta(days=1), package=f"D{n}") for n in range(YOUNG_DELIVERIES)]
    models = {m.key: m for m in learn(windows, grown, window=200)}
    assert models[key].carrier_lead_days == [] and windows[key].carrier_dated == []
    assert learn(windows, [dated("NEW", 3)], window=200) == []  # no version for every package dated


def typical_only(leads: list[int], key: str = service_key("ups", "two_day")) -> LaneModels:
    return LaneModels().updated(LaneModelsUpdated(models=[LaneModel(key=key, version=1, carrier_lead_days=leads)]))


def test_before_any_model_a_package_without_a_date_of_its_own_is_shown_the_carriers_usual_one():
    usual = typical_only([0, 0, 6, 0])  # the carrier dates this level's packages 2 days out
    state, effects = apply_with(usual, [placed(), shipped(), scan(S.in_transit, 2 * HOUR)])
    package = state.packages["P1"]
    assert (package.estimated_delivery, package.estimate_source) == (MONDAY + timedelta(days=2), "carrier_typical")
    shipped_notice = next(c for c in effects if isinstance(c, NotificationCommand) and c.type.value == "shipped")
    assert (shipped_notice.estimated_delivery, shipped_notice.estimate_source) == \
        (MONDAY + timedelta(days=2), "carrier_typical")
    # The package's own carrier date comes first; a model, once there, before both.
    own, _ = apply_with(usual, [placed(), shipped(), scan(S.in_transit, 2 * HOUR,
                                                          estimated_delivery=MONDAY + timedelta(days=1))])
    assert (own.packages["P1"].estimated_delivery, own.packages["P1"].estimate_source) == \
        (MONDAY + timedelta(days=1), "carrier")
    modelled, _ = apply_with(LaneModels().updated(LaneModelsUpdated(models=[
        lane([0, 10, 0, 30], carrier_lead_days=[0, 0, 6, 0])])), [placed(), shipped(), scan(S.in_transit, 2 * HOUR)])
    assert (modelled.packages["P1"].estimated_delivery, modelled.packages["P1"].estimate_source) == \
        (MONDAY + timedelta(days=3), "model")
    # A model that knows no delivery as long as this package's time on the road: the promise,
    # not the carrier's usual date (the model's own "not before then" has its say elsewhere).
    slow = LaneModels().updated(LaneModelsUpdated(models=[lane([0, 30], carrier_lead_days=[0, 0, 6])]))
    outlived, _ = apply_with(slow, [placed(), shipped(), scan(S.in_transit, 2 * HOUR), scan(S.in_transit, 48 * HOUR)])
    assert (outlived.packages["P1"].estimated_delivery, outlived.packages["P1"].estimate_source) == \
        (date(2026, 11, 4), "promise")
    # A usual date after the promise (Wednesday) is not this package's date to give: the promise.
    later, effects = apply_with(typical_only([0, 0, 0, 6]), [placed(), shipped(), scan(S.in_transit, 2 * HOUR)])
    assert (later.packages["P1"].estimated_delivery, later.packages["P1"].estimate_source) == \
        (date(2026, 11, 4), "promise")
    # Another level's usual date says nothing of this one: the promise.
    other, _ = apply_with(typical_only([0, 0, 6], key=service_key("ups", "standard")),
                          [placed(), shipped(), scan(S.in_transit, 2 * HOUR)])
    assert (other.packages["P1"].estimated_delivery, other.packages["P1"].estimate_source) == \
        (date(2026, 11, 4), "promise")


def test_the_order_agent_reports_its_carriers_first_date_once():
    from models.transit import TransitStarted

    def reported(effects) -> list:
        return [(e.package_id, e.carrier_date, e.dated_later) for e in effects if isinstance(e, TransitStarted)]

    first, later = MONDAY + timedelta(days=2), MONDAY + timedelta(days=3)
    _state, effects = apply_with(None, [placed(), shipped(), scan(S.in_transit, 2 * HOUR, estimated_delivery=first),
                                        scan(S.in_transit, 3 * HOUR, estimated_delivery=later)])
    assert reported(effects) == [("P1", None, False), ("P1", first, True)]  # the date alone, after
    # Dated before it was handed over (a label's first scan): the hand-over's record carries it.
    _state, effects = apply_with(None, [placed(), scan(S.info_received, 30, estimated_delivery=first),
                                        shipped(), scan(S.in_transit, 2 * HOUR, estimated_delivery=later)])
    assert reported(effects) == [("P1", first, False)]
    # No shipment event: the acceptance scan that dates it is one hand-over record, with the date.
    _state, effects = apply_with(None, [placed(), scan(S.in_transit, 2 * HOUR, estimated_delivery=first),
                                        scan(S.in_transit, 3 * HOUR, estimated_delivery=later)])
    assert reported(effects) == [("P1", first, False)]


def test_a_date_reported_after_the_hand_over_does_not_count_the_package_as_travelling_again():
    from models.transit import LaneWindow, learn

    key = lane_key("ups", "two_day", "FC-A", "US-CA")
    windows: dict[str, LaneWindow] = {}
    learn(windows, [started("P0")], window=200)
    windows[key].travelling = []  # a busy young lane kept only its newest hand-overs
    later = msgspec.structs.replace(dated("P0", 3), dated_later=True)
    learn(windows, [later], window=200)
    assert windows[key].travelling == [] and [d[0] for d in windows[service_key("ups", "two_day")].carrier_dated] \
        == ["P0"]


@given(st.lists(st.integers(0, 30), max_size=12), st.integers(0, 15), st.one_of(st.none(), st.integers(0, 20)))
def test_the_usual_date_is_never_past_nor_after_the_promise_nor_from_fewer_than_five_dates(
        leads: list[int], travelled: int, promised_in: int | None):
    from models.transit import CARRIER_TYPICAL_MIN_DATES

    today = MONDAY + timedelta(days=travelled)
    promised = None if promised_in is None else MONDAY + timedelta(days=promised_in)
    usual = typical_only(leads).carrier_typical("ups", "two_day", MONDAY, today, promised)
    left = sum(leads[travelled:])  # every day a working day: no deliveries learned yet
    if usual is None:
        assert left < CARRIER_TYPICAL_MIN_DATES or promised is not None
    else:
        assert left >= CARRIER_TYPICAL_MIN_DATES and usual >= today
        assert promised is None or usual <= promised
        # Half of the dates not passed yet are at or before it.
        assert 2 * sum(leads[travelled:(usual - MONDAY).days + 1]) >= left
