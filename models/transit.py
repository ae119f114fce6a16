"""Our own delivery estimate: how long a lane's packages take, learned from delivered history.

A *lane* is (carrier, service level, origin fulfillment center, destination region). Each
delivered package is one observation: the local date it was handed to the carrier and the
local date it was delivered, in the customer's time zone. A lane's model is the histogram of
its last ``lane_model_window`` deliveries in the carrier's *working days* after the hand-over
date (0 = delivered the same day), and the weekdays the carrier was seen delivering. Counting
working days, not hours, carries the weekday and weekend effect: a package handed over on a
Friday to a carrier that rests at the weekend waits until Monday, and so does its estimate.

Why a window and not a streaming quantile sketch: a lane sees tens to thousands of deliveries,
the histogram has some 30 cells, and a window forgets a carrier's old speed after a season at
a fixed cost (``lane_model_window`` deliveries per lane) with exact quantiles.

A package not yet delivered is estimated from the deliveries that took at least as long as it
has been travelling (the histogram conditioned on time in transit): its p50 date, the
confidence that it arrives by then, and the probability it arrives after the promise.

A young key (fewer than ``YOUNG_DELIVERIES`` deliveries) has seen its fast packages come back
and not yet its slow ones: a histogram of its deliveries alone is early (right-censoring; in
``make quality`` the week-1 lane models were 2 days early on standard service). While young, a
key also counts the packages handed over and still travelling (``TransitStarted``), and its
histogram is the Kaplan-Meier estimate: on transit day d, the deliveries that day divided by
the packages still at risk (delivered on day d or later, or travelling for more than d days;
one on its d-th day counts half, as today is not over). The share still travelling past the
longest delivery seen lies on the day after it: the estimate says "not before then" rather
than inventing a tail, and its confidence does not count those packages as delivered. Once the key has
``YOUNG_DELIVERIES`` deliveries it is a plain histogram again (stop 27 measured Kaplan-Meier
over all history hurting the carrier-wide model later).

Sparse lanes borrow: a lane's histogram is added to that of (carrier, service level) over
every lane, scaled to ``LANE_PRIOR_DELIVERIES`` deliveries, so a handful of deliveries moves a
lane's estimate only as far as they justify (``LaneModels.for_lane``); that level's histogram
is first stretched to the pace the other carriers and levels keep from the lane's origin to its
region, where they are slower than their levels (``LaneModels.pair_pace``).

Models are built by the lane-model agent and reach the order agents as versioned events on
the order-events topic, one copy per partition: a replay applies each version at the same
point and gives the same estimates and command ids. Everything here is pure: dates in, dates out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Annotated

import msgspec
from msgspec import Meta, Struct, field

ALL_WEEKDAYS = (0, 1, 2, 3, 4, 5, 6)
# The carrier's misses: leads 0, 1, 2 and 3+ days (scan to the carrier's date), misses -3..+3 days.
LEADS = 4
MISS_RANGE = 3
MISSES = 2 * MISS_RANGE + 1
CORRECTION_MIN_SCANS = 20
HALF_DAY_MIN_DELIVERIES = 10  # a lane's morning or afternoon hand-overs, before they count apart
AFTERNOON_HOUR = 12  # local hour from which a hand-over is an afternoon one
BEYOND_LONGEST_DAYS = 60  # working days past a lane's longest delivery still weighed as possible
YOUNG_DELIVERIES = 50  # below this a key counts its travelling packages (Kaplan-Meier)
TRAVELLING_KEPT = 2000  # packages still travelling kept per young key (the newest hand-overs)
TRAVELLING_KEPT_DAYS = 60  # a package travelling longer is taken as lost, not at risk
LANE_PRIOR_DELIVERIES = 5  # how many deliveries the carrier's model on the service level weighs in a lane
PAIR_PRIOR_DELIVERIES = 10  # deliveries at the level's own pace a pair's pace is drawn towards
CHOICE_PRIOR_SCANS = 400  # how many of a lane's scans its carrier's measure on the level weighs in its choice
# A key's usual silence: the longest silence that this share of its delivered packages stayed
# within, once it has this many deliveries (the stale rule's measure; models.detection).
USUAL_SILENCE_SHARE = 0.9
USUAL_SILENCE_MIN_DELIVERIES = 50
# Out-for-delivery hours: 24 cells by the local hour of the delivery day's out-for-delivery scan,
# and one for deliveries that had none that day.
ROUTE_HOURS = 24
ROUTE_CELLS = ROUTE_HOURS + 1
LANE = "lane"
SERVICE = "service"
CARRIER = "carrier"


def lane_key(carrier: str, service_level: str, origin: str, destination_region: str) -> str:
    return f"{LANE}|{carrier}|{service_level}|{origin}|{destination_region}"


def service_key(carrier: str, service_level: str) -> str:
    return f"{SERVICE}|{carrier}|{service_level}"


def carrier_key(carrier: str) -> str:
    return f"{CARRIER}|{carrier}"


def observation_keys(carrier: str, service_level: str, origin: str, destination_region: str) -> list[str]:
    """The model keys a package counts in: its lane's (when the order named both ends) and its
    carrier's on the service level."""
    keys = [service_key(carrier, service_level)]
    if destination_region and origin:
        keys.insert(0, lane_key(carrier, service_level, origin, destination_region))
    return keys


class TransitStarted(Struct, kw_only=True, tag="transit_started"):
    """A package handed to its carrier, as the order agent saw it: published keyed by carrier.
    A young key counts it as travelling until its ``TransitObserved`` comes."""

    package_id: str
    order_id: str
    carrier: str
    service_level: str
    origin: str
    destination_region: str
    handed_over: date  # local date, as in TransitObserved
    handed_over_afternoon: bool | None = None
    # The carrier's first date for the package, once it gave one: a young key's usual carrier
    # date (``carrier_typical``). In the hand-over's record when known by then, else in a second
    # record (``dated_later``) that only reports the date: the package is travelling already.
    carrier_date: date | None = None
    dated_later: bool = False

    def keys(self) -> list[str]:
        return observation_keys(self.carrier, self.service_level, self.origin, self.destination_region)


class TransitObserved(Struct, kw_only=True, tag="transit_observed"):
    """One delivered package, as the order agent saw it: published keyed by carrier."""

    package_id: str
    order_id: str
    carrier: str
    service_level: str
    origin: str  # fulfillment center
    destination_region: str  # "US-CA"; "" when the order did not say
    handed_over: date  # local date the carrier got it (shipped, else its acceptance scan)
    # Handed over after noon, local: such a package often reaches the next sort a day later.
    # None: not known (records of an older worker).
    handed_over_afternoon: bool | None = None
    delivered: date  # local date of the delivery scan
    # How far off each source was at the package's scans, in days (absolute), and at how many
    # scans both gave a date: the lane's choice between them is made from these.
    carrier_error_days: float = 0.0
    model_error_days: float = 0.0
    compared: int = 0
    # How the carrier's date missed the delivery at each scan, by lead (``carrier_misses``).
    carrier_misses: list[int] = field(default_factory=list)
    # The longest time between two of its scans after acceptance: a silence it came back from.
    longest_silence_hours: float = 0.0
    # Local hour (0-23) of the out-for-delivery scan on the delivery day; ROUTE_HOURS: none
    # that day; None: not reported (an observation from an older worker).
    out_for_delivery_hour: Annotated[int, Meta(ge=0, le=ROUTE_HOURS)] | None = None

    def keys(self) -> list[str]:
        return observation_keys(self.carrier, self.service_level, self.origin, self.destination_region)


TransitRecord = TransitObserved | TransitStarted  # what the transit-observations topic carries


# Bounds checked when a model is decoded: a record that holds nonsense (a negative count, a
# carrier working only on a weekday that does not exist, where counting working days never
# ends) is refused as a whole, not applied to every order of the partition.
Count = Annotated[float, Meta(ge=0)]
Weekday = Annotated[int, Meta(ge=0, le=6)]


class LaneModel(Struct, kw_only=True):
    """What the order agents estimate from, for one lane (or one carrier and service level)."""

    key: str
    version: Annotated[int, Meta(ge=0)]  # deliveries this key has seen: grows with each; a replay meets the same one
    transit_days: list[Count] = field(default_factory=list)  # deliveries by working days after hand-over
    # The same, of the deliveries handed over in the afternoon (the morning's are the rest).
    afternoon_transit_days: list[Count] = field(default_factory=list)
    # Of ``transit_days``, the packages still travelling past the longest delivery a young key
    # has seen (Kaplan-Meier's remainder, on the day after it): not deliveries, so no confidence
    # counts them as delivered by then.
    travelling_days: list[Count] = field(default_factory=list)
    working_weekdays: Annotated[tuple[Weekday, ...], Meta(min_length=1, max_length=7)] = ALL_WEEKDAYS  # 0 = Monday
    # Mean absolute error in days of each source on this key's deliveries (at their scans):
    # the customer-facing estimate comes from the better one.
    carrier_error_days: Count | None = None
    model_error_days: Count | None = None
    compared: Annotated[int, Meta(ge=0)] = 0  # the scans those errors were measured at (0: not known, older records)
    # By how many days the carrier's date missed on this key, by lead (``carrier_misses``).
    carrier_misses: Annotated[list[Count], Meta(max_length=LEADS * MISSES)] = field(default_factory=list)
    # The longest silence a delivered package on this key came back from (hours between two
    # scans after acceptance): the customer hears "lost" only after a longer one.
    longest_silence_hours: Count | None = None
    # The longest silence ``USUAL_SILENCE_SHARE`` of them stayed within (None: too few
    # deliveries): a share, not the longest, so the few really silent packages do not set it.
    usual_silence_hours: Count | None = None
    # Deliveries by the local hour their out-for-delivery scan came on the delivery day
    # (``ROUTE_CELLS``; the last: none that day): how late in the day a package not yet out
    # for delivery can still arrive (``not_out_for_delivery_by``).
    out_for_delivery_hours: Annotated[list[Count], Meta(max_length=ROUTE_CELLS)] = field(default_factory=list)
    # While the key is young: its packages by working days from hand-over to the carrier's
    # first date for them (``carrier_typical``: the date a package without a date of its own
    # and without a model is shown, instead of the promise).
    carrier_lead_days: list[Count] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.carrier_misses) not in (0, LEADS * MISSES):  # refused on decode (a ValidationError)
            raise ValueError(f"carrier_misses holds {len(self.carrier_misses)} cells, not 0 or {LEADS * MISSES}")
        if len(self.out_for_delivery_hours) not in (0, ROUTE_CELLS):
            raise ValueError(f"out_for_delivery_hours holds {len(self.out_for_delivery_hours)} cells, "
                             f"not 0 or {ROUTE_CELLS}")

    def carrier_correction(self, lead_days: int) -> int | None:
        """The carrier's usual miss at this lead (days from the scan to its date): the median of
        (delivered - carrier's date) over this key's scans at that lead; None until
        ``CORRECTION_MIN_SCANS`` of them measured it."""
        lead = min(max(lead_days, 0), LEADS - 1)
        cells = self.carrier_misses[lead * MISSES:(lead + 1) * MISSES]
        total = sum(cells)
        if total < CORRECTION_MIN_SCANS:
            return None
        cumulative = 0.0
        for index, count in enumerate(cells):
            cumulative += count
            if cumulative * 2 >= total:
                return index - MISS_RANGE
        return 0

    def transit_days_for(self, afternoon: bool | None) -> list[float]:
        """The histogram of packages handed over in the same half of the day, once it holds
        ``HALF_DAY_MIN_DELIVERIES``; else of all of them."""
        if afternoon is None or not self.afternoon_transit_days:  # none kept: the morning's is the whole
            return self.transit_days
        later = self.afternoon_transit_days
        half = later if afternoon else [total - (later[i] if i < len(later) else 0)
                                         for i, total in enumerate(self.transit_days)]
        return half if sum(half) >= HALF_DAY_MIN_DELIVERIES else self.transit_days

    @property
    def deliveries(self) -> float:
        return sum(self.transit_days)

    def prefers_model(self) -> bool:
        """The model's date, unless the carrier's was measured closer on this key's deliveries.

        A tie goes to the model: at the scans of a young lane the model's date was the carrier's
        own (no miss measured yet), so a tie says nothing against the correction measured since."""
        if self.model_error_days is None:
            return False
        return self.carrier_error_days is None or self.model_error_days <= self.carrier_error_days


class LaneModelsUpdated(Struct, kw_only=True, tag="lane_models"):
    """New versions of some lanes' models: one copy goes to every order-events partition."""

    models: list[LaneModel]
    published_at: str = ""  # ISO time the lane-model agent built them (for ops, not for rules)


class ModelEstimate(Struct, kw_only=True, frozen=True):
    key: str  # the model it came from, and its version: "<key>@<version>"
    estimate: date  # the p50 delivery date
    confidence: float  # share of similar packages delivered by that date
    late_probability: float | None  # of arriving after the promise; None without one


class LaneModels:
    """The models in force on one order partition: replaced whole by version, never edited."""

    def __init__(self, models: dict[str, LaneModel] | None = None) -> None:
        self.models: dict[str, LaneModel] = models or {}
        self._over_levels: dict[str, LaneModel | None] = {}
        # Computed when first asked (the set is replaced whole, never edited): the levels with
        # their mean working days, and each pair's sums (``_pair_sums``).
        self._levels: list[tuple[str, str, LaneModel, float]] | None = None
        self._pairs: dict[tuple[str, str], tuple[tuple[float, float, float],
                                                 dict[str, tuple[float, float, float]]]] = {}

    def updated(self, update: LaneModelsUpdated) -> LaneModels:
        """A new set with the update's newer versions; an older or equal version is ignored."""
        models = dict(self.models)
        for model in update.models:
            known = models.get(model.key)
            if known is None or model.version > known.version:
                models[model.key] = model
        return LaneModels(models)

    def usual_silence_hours(self, carrier: str, service_level: str) -> float | None:
        """The usual silence of the carrier's delivered packages on this service level, over
        every lane (a silence is the carrier's network and the speed it sold, not the lane)."""
        found = self.models.get(service_key(carrier, service_level))
        return None if found is None else found.usual_silence_hours

    def carrier_typical(self, carrier: str, service_level: str, handed_over: date, today: date,
                        promised: date | None) -> date | None:
        """The carrier's usual date on this service level for a package handed over on
        ``handed_over``: the median lead (working days from hand-over to the carrier's first
        date) of its recent packages whose lead has not passed by ``today``. None while fewer
        than ``CARRIER_TYPICAL_MIN_DATES`` such leads are left (one odd package far out does
        not set the date), once the key is grown (its model takes over before then:
        ``lane_model_min_deliveries`` < ``YOUNG_DELIVERIES``), or when that date is after
        ``promised``: a late date for this package is the carrier's own to give, weighed
        before a customer hears it (``estimate_after_promise``), not an average's.

        For the first days of a deployment: a standard package's promise is padded (in
        ``make quality`` it was 3 or more days after the delivery for most of them), and the
        carrier's dates for the others on the level say how long such packages take."""
        found = self.models.get(service_key(carrier, service_level))
        if found is None or not found.carrier_lead_days:
            return None
        leads = found.carrier_lead_days
        reached = working_days_between(handed_over, today, found.working_weekdays)
        if sum(leads[reached:]) < CARRIER_TYPICAL_MIN_DATES:
            return None
        usual = max(nth_working_day(handed_over, median_cell(leads, reached), found.working_weekdays), today)
        return usual if promised is None or usual <= promised else None

    def service_model(self, carrier: str, service_level: str) -> LaneModel | None:
        """The carrier's model on this service level over every lane, however few deliveries."""
        return self.models.get(service_key(carrier, service_level))

    def over_levels(self, carrier: str) -> LaneModel | None:
        """The carrier's measured misses over all its service levels (its dates come from one
        system whatever speed was sold): for a level whose own are not measured yet at a
        lead. None while no level measured any. Only its ``carrier_misses`` mean anything: it
        has no deliveries and is never a lane's model."""
        if carrier not in self._over_levels:  # the set is replaced whole, never edited: computed once
            prefix = service_key(carrier, "")
            misses = [m.carrier_misses for key, m in self.models.items() if key.startswith(prefix) and m.carrier_misses]
            self._over_levels[carrier] = LaneModel(key=carrier_key(carrier), version=0,
                                                   carrier_misses=summed(misses)) if misses else None
        return self._over_levels[carrier]

    def pair_pace(self, origin: str, destination_region: str, carrier: str = "", service_level: str = ""
                  ) -> float | None:
        """How long packages from ``origin`` to ``destination_region`` take against their
        carrier's level over every lane: the deliveries' mean working days over what their
        levels' histograms would have made them, summed over every other carrier and level on
        that pair (a far destination is far for every carrier; the lane of ``carrier`` on
        ``service_level`` is left out: its own deliveries weigh in its model already), drawn
        towards 1 as if ``PAIR_PRIOR_DELIVERIES`` more had kept their levels' pace. Only lanes
        counted in their level's working days speak (a lane not rebuilt since its carrier's
        weekend was learned counts its days otherwise). None when no other lane on the pair
        has any."""
        pair = self._pairs.get((origin, destination_region))
        if pair is None:
            pair = self._pairs[(origin, destination_region)] = self._pair_sums(origin, destination_region)
        total, lanes = pair
        mine = lanes.get(lane_key(carrier, service_level, origin, destination_region), (0.0, 0.0, 0.0))
        own, usual, count = (total[i] - mine[i] for i in range(3))
        if usual <= 0 or count <= 0:
            return None
        prior = PAIR_PRIOR_DELIVERIES * usual / count  # that many deliveries at their levels' pace
        return (own + prior) / (usual + prior)

    def _pair_sums(self, origin: str, destination_region: str
                   ) -> tuple[tuple[float, float, float], dict[str, tuple[float, float, float]]]:
        """The pair's sums and each of its lanes' (with deliveries, counted in its level's working
        days): its mean working days and its level's, both times its deliveries, and its
        deliveries. Summed in the lanes' key order: the same pace on every partition."""
        if self._levels is None:
            self._levels = []
            for key, level in self.models.items():
                parts = key.split("|")
                if parts[0] == SERVICE and len(parts) == 3 and level.deliveries:
                    self._levels.append((parts[1], parts[2], level, _mean_cell(level.transit_days)))
        lanes: dict[str, tuple[float, float, float]] = {}
        total = (0.0, 0.0, 0.0)
        if "|" in origin or "|" in destination_region:  # not a lane key's part: no pair
            return total, lanes
        levels = sorted(((lane_key(carrier, service_level, origin, destination_region), level, mean)
                         for carrier, service_level, level, mean in self._levels), key=lambda found: found[0])
        for key, level, level_mean in levels:
            model = self.models.get(key)
            if model is not None and model.deliveries and model.working_weekdays == level.working_weekdays:
                lane = lanes[key] = (_mean_cell(model.transit_days) * model.deliveries,
                                     level_mean * model.deliveries, float(model.deliveries))
                total = (total[0] + lane[0], total[1] + lane[1], total[2] + lane[2])
        return total, lanes

    def for_lane(self, carrier: str, service_level: str, origin: str, destination_region: str,
                 min_deliveries: int) -> LaneModel | None:
        """The lane's model, leaning on its carrier's model on this service level while sparse.

        A lane's histogram is added to the carrier's (over every lane, scaled to
        ``LANE_PRIOR_DELIVERIES`` deliveries, and stretched to the pace of the lane's origin and
        region where that pair is slower: ``pair_pace``): a lane with a handful of deliveries
        moves the estimate only as far as they justify; one with hundreds is its own. With neither seen
        ``min_deliveries`` times there is no model. The accuracy that decides between carrier
        and model is the lane's own once it has enough deliveries, drawn towards the same
        measure over every lane of the level (``_shrunk``), else the level's; the carrier's
        measured misses are the lane's once it has enough deliveries, lead by lead (a lead the
        lane has not measured yet takes the carrier's misses over every lane).
        """
        lane = self.models.get(lane_key(carrier, service_level, origin, destination_region))
        wide = self.models.get(service_key(carrier, service_level))
        pace = self.pair_pace(origin, destination_region, carrier, service_level)
        # The level's histogram at the pace of a slower pair. Not shrunk for a faster one: that
        # would put next-day deliveries on the hand-over day and drop the level's longest.
        if wide is not None and pace is not None and pace > 1:
            wide = _at_pace(wide, pace)
        if wide is None or not wide.deliveries:
            return lane if lane is not None and lane.deliveries >= min_deliveries else None
        if lane is None or not lane.deliveries:
            return wide if wide.deliveries >= min_deliveries else None
        if lane.deliveries < min_deliveries and wide.deliveries < min_deliveries:
            return None
        scale = LANE_PRIOR_DELIVERIES / wide.deliveries
        cells = max(len(lane.transit_days), len(wide.transit_days))

        def blended(own_cells: list[float], wide_cells: list[float]) -> list[float]:
            return [(own_cells[i] if i < len(own_cells) else 0) + scale * (wide_cells[i] if i < len(wide_cells) else 0)
                    for i in range(cells)]
        own = lane.deliveries >= min_deliveries
        return LaneModel(
            key=lane.key, version=lane.version, working_weekdays=(lane if own else wide).working_weekdays,
            transit_days=blended(lane.transit_days, wide.transit_days),
            afternoon_transit_days=blended(lane.afternoon_transit_days, wide.afternoon_transit_days),
            travelling_days=blended(lane.travelling_days, wide.travelling_days),
            carrier_error_days=_shrunk(lane, wide, "carrier") if own else wide.carrier_error_days,
            model_error_days=_shrunk(lane, wide, "model") if own else wide.model_error_days,
            carrier_misses=_misses_by_lead(lane.carrier_misses, wide.carrier_misses) if own else wide.carrier_misses,
            longest_silence_hours=(lane if own else wide).longest_silence_hours,
            # Routes are the carrier's on the level: every lane's deliveries speak.
            out_for_delivery_hours=wide.out_for_delivery_hours)


def _mean_cell(counts: list[float]) -> float:
    total = sum(counts)
    return sum(index * count for index, count in enumerate(counts)) / total if total else 0.0


def _stretched(counts: list[float], pace: float) -> list[float]:
    """A histogram with each cell's working days times ``pace``, its count split between the
    two cells beside where it lands."""
    if not counts:
        return []
    out = [0.0] * (math.floor((len(counts) - 1) * pace) + 2)
    for index, count in enumerate(counts):
        at = index * pace
        low = math.floor(at)
        out[low] += count * (1 - (at - low))
        out[low + 1] += count * (at - low)
    while len(out) > 1 and not out[-1]:
        out.pop()
    return out


def _at_pace(level: LaneModel, pace: float) -> LaneModel:
    """The level's model with its deliveries' times scaled by a pair's pace (``pair_pace``):
    what a lane with no history of its own leans on."""
    return msgspec.structs.replace(
        level, transit_days=_stretched(level.transit_days, pace),
        afternoon_transit_days=_stretched(level.afternoon_transit_days, pace),
        travelling_days=_stretched(level.travelling_days, pace))


def _shrunk(lane: LaneModel, wide: LaneModel, source: str) -> float | None:
    """The lane's mean error of ``source``, drawn towards its carrier's on the level as if that
    had been measured at ``CHOICE_PRIOR_SCANS`` of the lane's scans: the two sources often
    differ by a tenth of a day, less than a lane's few hundred scans can tell apart, and a
    lane then chose by chance. A lane whose own measure differs at thousands of scans keeps it;
    a level measured at fewer scans weighs only those."""
    own = lane.carrier_error_days if source == "carrier" else lane.model_error_days
    level = wide.carrier_error_days if source == "carrier" else wide.model_error_days
    if own is None or level is None or not lane.compared:  # not compared: a record of an older worker
        return own
    prior = min(CHOICE_PRIOR_SCANS, wide.compared)  # a level measured at fewer scans weighs what it has
    return (own * lane.compared + level * prior) / (lane.compared + prior)


def _misses_by_lead(own: list[float], wide: list[float]) -> list[float]:
    """The lane's carrier misses at each lead it measured (``CORRECTION_MIN_SCANS``), the
    carrier's over every lane at the others: a lane that has seen its carrier's dates 3 days
    ahead but seldom 1 day ahead still corrects both."""
    if not own or not wide:
        return own or wide
    rows = []
    for lead in range(LEADS):
        row = own[lead * MISSES:(lead + 1) * MISSES]
        rows.extend(row if sum(row) >= CORRECTION_MIN_SCANS else wide[lead * MISSES:(lead + 1) * MISSES])
    return rows


class LaneWindow(Struct, kw_only=True):
    """What the lane-model agent keeps per key: the last deliveries, and for a carrier's key
    the weekdays of its last deliveries (its working days are learned from them)."""

    key: str
    version: int = 0
    observations: list[TransitObserved] = field(default_factory=list)
    delivered_per_day: list[tuple[date, int]] = field(default_factory=list)  # carrier key: last weeks
    # Packages counted lately, beyond the window too: a replayed batch is not counted twice.
    counted: list[str] = field(default_factory=list)
    # While young (``YOUNG_DELIVERIES``): packages handed over and not delivered yet, as
    # (package id, local hand-over date, handed over in the afternoon).
    travelling: list[tuple[str, date, bool | None]] = field(default_factory=list)
    # Carrier key: the newest local date any of its packages was handed over or delivered on,
    # the "today" a travelling package's time on the road is counted to.
    latest: date | None = None
    # While young, a service key's packages dated by their carrier: (package id, local
    # hand-over date, the carrier's first date), the newest ``CARRIER_DATED_KEPT``. On a carrier
    # key, always: its newest ``WEEKDAY_DATES_KEPT`` first dates, the weekdays it plans to
    # deliver on before its deliveries have shown them (``learned_weekdays``).
    carrier_dated: list[tuple[str, date, date]] = field(default_factory=list)


WEEKDAYS_KEPT_DAYS = 56  # the days of a carrier's deliveries counted to learn when it works
WEEKDAYS_MIN_DELIVERIES = 50
DAY_OFF_MIN_EXPECTED = 20  # deliveries an average day brings for one empty weekend day to make a day off
WEEKEND = (5, 6)
WEEKDAY_DATES_KEPT = 500  # a carrier's newest first dates, by weekday
WEEKDAY_DATES_MIN = 100  # of them, before their weekdays say anything
DATED_DAY_OFF_SHARE = 0.25  # of an average day's dates, below which a day no delivery judged yet is off
COUNTED_BEYOND_WINDOW = 1000
CARRIER_DATED_KEPT = 200
CARRIER_TYPICAL_MIN_DATES = 5
CARRIER_LEAD_MAX_DAYS = 60


def learn(windows: dict[str, LaneWindow], observed: list[TransitRecord], window: int,
          offsets: list[int] | None = None) -> list[LaneModel]:
    """Add deliveries (and, for young keys, hand-overs) to their keys' windows (``windows`` is
    changed in place; missing keys are started); returns the new model of every key that
    changed, in key order.

    A package already in a window is not counted again: the order agent re-emits its
    observation when it replays a batch after a crash. ``offsets``: each observation's offset
    on its topic partition (a carrier's keys all live on one), which becomes the version of
    the keys it changes: it only grows, a replay gives the same one, and a window lost or
    damaged and started afresh still publishes versions the order partitions accept.
    """
    changed: set[str] = set()
    for index, seen in enumerate(observed):
        weekdays = windows.setdefault(carrier_key(seen.carrier), LaneWindow(key=carrier_key(seen.carrier)))
        day = seen.delivered if isinstance(seen, TransitObserved) else seen.handed_over
        weekdays.latest = max(weekdays.latest or day, day)
        if isinstance(seen, TransitStarted) and _dated_weekday(weekdays, seen):
            changed.add(weekdays.key)
        for key in seen.keys():
            found = windows.setdefault(key, LaneWindow(key=key))
            if seen.package_id in found.counted:
                continue
            if isinstance(seen, TransitStarted):
                young = min(YOUNG_DELIVERIES, window)
                dated = _dated(found, seen, young)
                travels = not seen.dated_later and _travels(found, seen, weekdays.latest, young)
                if not (travels or dated):
                    continue
            else:
                found.counted.append(seen.package_id)
                del found.counted[:-(window + COUNTED_BEYOND_WINDOW)]
                found.observations.append(seen)
                del found.observations[:-window]
                found.travelling = [] if len(found.observations) >= min(YOUNG_DELIVERIES, window) else [
                    t for t in found.travelling if t[0] != seen.package_id]
                if len(found.observations) >= min(YOUNG_DELIVERIES, window):
                    found.carrier_dated = []  # grown: its model estimates, not the carrier's usual date
                if key.startswith(SERVICE):  # each package once in its carrier's weekdays
                    _count_day(weekdays.delivered_per_day, seen.delivered)
                    changed.add(weekdays.key)
            found.version = max(found.version + 1, offsets[index] if offsets else 0)
            changed.add(key)
    models = []
    weekdays_of: dict[str, tuple[int, ...]] = {}
    for key in sorted(changed):
        if key.startswith(CARRIER):
            continue
        carrier = key.split("|")[1]
        found = windows[key]
        today = windows[carrier_key(carrier)]
        if carrier not in weekdays_of:
            weekdays_of[carrier] = learned_weekdays(today.delivered_per_day, WEEKDAYS_MIN_DELIVERIES, today.latest,
                                                    [dated for _, _, dated in today.carrier_dated])
        days = weekdays_of[carrier]
        models.append(build_model(key, found.version, found.observations, days, found.travelling, today.latest,
                                  found.carrier_dated))
    return models


def median_cell(counts: list[float], start: int, remaining: float | None = None) -> int:
    """The first cell from ``start`` by which half of the counts from ``start`` on
    (``remaining``, when the caller summed them already) are reached; ``start`` when all zero."""
    remaining = sum(counts[start:]) if remaining is None else remaining
    cumulative = 0.0
    for cell in range(start, len(counts)):
        cumulative += counts[cell]
        if cumulative * 2 >= remaining:
            return cell
    return start


def _dated(found: LaneWindow, started: TransitStarted, young: int) -> bool:
    """Count the carrier's first date of a package on a young service key; False when it
    changes nothing (a lane or grown key, or nothing ``_kept_date`` keeps)."""
    if not found.key.startswith(SERVICE) or len(found.observations) >= young:
        return False
    return _kept_date(found.carrier_dated, started, CARRIER_DATED_KEPT)


def _dated_weekday(carrier: LaneWindow, started: TransitStarted) -> bool:
    """Keep a package's first carrier date on its carrier's key (the weekdays the carrier plans
    to deliver on); False when ``_kept_date`` keeps nothing."""
    return _kept_date(carrier.carrier_dated, started, WEEKDAY_DATES_KEPT)


def _kept_date(kept: list[tuple[str, date, date]], started: TransitStarted, newest: int) -> bool:
    """Append a package's first carrier date to ``kept``, the ``newest`` latest only; False
    when it has none, it is a repeat (an order agent's replay re-sends its records soon
    after), or the date is before the hand-over or months after it: a feed's mistake, not a
    lead."""
    dated = started.carrier_date
    if dated is None or not 0 <= (dated - started.handed_over).days <= CARRIER_LEAD_MAX_DAYS \
            or any(d[0] == started.package_id for d in kept):
        return False
    kept.append((started.package_id, started.handed_over, dated))
    del kept[:-newest]
    return True


def _travels(found: LaneWindow, started: TransitStarted, latest: date, young: int) -> bool:
    """Count a hand-over as travelling on a key with fewer than ``young`` deliveries; False
    when it changes nothing (a grown key, a package already counted, or one handed over too
    long ago to be taken for anything but lost)."""
    oldest = latest - timedelta(days=TRAVELLING_KEPT_DAYS)
    if len(found.observations) >= young or started.handed_over < oldest \
            or any(t[0] == started.package_id for t in found.travelling):
        return False
    found.travelling.append((started.package_id, started.handed_over, started.handed_over_afternoon))
    found.travelling = [t for t in found.travelling if t[1] >= oldest][-TRAVELLING_KEPT:]
    return True


RECORD_MODELS = 300  # models per record: about 100 KiB, well under a broker's 1 MiB message limit


def in_records(models: list[LaneModel]) -> list[list[LaneModel]]:
    """Models split into records of at most ``RECORD_MODELS``: a set of thousands of lanes
    must not become one record the broker refuses."""
    return [models[i:i + RECORD_MODELS] for i in range(0, len(models), RECORD_MODELS)]


def broadcast(models: list[LaneModel]) -> list[list[LaneModel]]:
    """The records a ``learn`` call sends to every order partition: the models that have
    deliveries to estimate from (or, while young, the carrier's dates: ``carrier_typical``), in
    records of at most ``RECORD_MODELS``. A key that has only seen hand-overs estimates nothing
    yet: its window is stored, its empty model not sent."""
    return in_records([model for model in models if model.deliveries or model.carrier_lead_days])


def changed_windows(models: list[LaneModel], observed: list[TransitRecord]) -> set[str]:
    """The window keys a ``learn`` call changed: the models' keys and their carriers'."""
    return {m.key for m in models} | {carrier_key(o.carrier) for o in observed}


def carrier_misses(dated: list[tuple[date, date]], delivered: date) -> list[int]:
    """Counts of (lead, miss) over a package's scans: lead = the carrier's date - the scan's date
    (0..3+ days), miss = delivered - the carrier's date (clamped to -3..+3)."""
    counts = [0] * (LEADS * MISSES)
    for scanned, promised in dated:
        lead = min(max((promised - scanned).days, 0), LEADS - 1)
        miss = min(max((delivered - promised).days, -MISS_RANGE), MISS_RANGE)
        counts[lead * MISSES + miss + MISS_RANGE] += 1
    return counts


def summed(rows: Sequence[Sequence[float]]) -> list[float]:
    total = [0.0] * (LEADS * MISSES)
    for row in rows:
        for index, count in enumerate(row[:LEADS * MISSES]):
            total[index] += count
    return total


# --- working days ----------------------------------------------------------------------

def working_days_between(start: date, end: date, weekdays: tuple[int, ...]) -> int:
    """Working days after ``start`` up to and including ``end`` (0 when ``end`` <= ``start``)."""
    if end <= start:
        return 0
    days = (end - start).days
    weeks, rest = divmod(days, 7)
    count = weeks * len(weekdays)
    first = start.weekday()
    count += sum(1 for i in range(1, rest + 1) if (first + i) % 7 in weekdays)
    return count


def nth_working_day(start: date, n: int, weekdays: tuple[int, ...]) -> date:
    """The ``n``-th working day after ``start`` (``start`` itself for 0)."""
    if n <= 0 or not weekdays:
        return start
    weeks, rest = divmod(n - 1, len(weekdays))
    day = start + timedelta(days=7 * weeks)
    left = rest + 1
    while left:
        day += timedelta(days=1)
        if day.weekday() in weekdays:
            left -= 1
    return day


def _count_day(per_day: list[tuple[date, int]], day: date) -> None:
    """One more delivery on ``day``; days older than ``WEEKDAYS_KEPT_DAYS`` before the newest go."""
    for index, (known, count) in enumerate(per_day):
        if known == day:
            per_day[index] = (day, count + 1)
            break
    else:
        per_day.append((day, 1))
        per_day.sort()
        newest = per_day[-1][0]
        per_day[:] = [(d, c) for d, c in per_day if (newest - d).days < WEEKDAYS_KEPT_DAYS]


def learned_weekdays(per_day: list[tuple[date, int]], min_deliveries: int, today: date | None = None,
                     carrier_dates: Sequence[date] = ()) -> tuple[int, ...]:
    """The weekdays a carrier delivers on, from its deliveries per date (the last 8 weeks).

    A weekday is a day off once it came round, whole, and drew less than a tenth of an average
    day's deliveries on average over its turns: after twice; a Saturday or Sunday after once when an average day
    brings ``DAY_OFF_MIN_EXPECTED`` deliveries (a busy carrier's empty Sunday is plain after one,
    and a new deployment's first fortnight should not take Friday's packages as delivered on
    Saturday; a weekday empty once is more likely a holiday). Only days before ``today`` (the
    newest day the carrier's records reached; default the newest delivery) are judged: today's
    deliveries are still coming in (``today`` is taken no later than the day after the newest
    delivery: days no record reached are not empty); for the once-rule, the weekend is judged
    once both its days are over. Before
    ``min_deliveries`` every day counts, and so does a weekday that has not come round yet (a
    new carrier's first days see only a few weekdays), unless the carrier's own dates say
    otherwise: a day no delivery has judged yet (not come round, or a quiet carrier's first empty
    one) is off when fewer than ``DATED_DAY_OFF_SHARE`` of an average day's ``carrier_dates``
    (its packages' first dates, ``WEEKDAY_DATES_MIN`` or more) fall on it. A carrier plans its
    deliveries on the days it works, so a deployment's first Friday knows a weekday-only
    carrier's weekend before it comes; a day any of its deliveries came on (today's too) is not
    off by its dates, only by its deliveries.
    """
    dated = [0] * 7
    for day in carrier_dates:
        dated[day.weekday()] += 1

    delivered_on = {day.weekday() for day, count in per_day if count}

    def planned_off(weekday: int) -> bool:
        if weekday in delivered_on:  # today's deliveries too: a day it delivers on is not off by its plans
            return False
        average = len(carrier_dates) / 7
        return len(carrier_dates) >= WEEKDAY_DATES_MIN and dated[weekday] < DATED_DAY_OFF_SHARE * average

    total = sum(count for _, count in per_day)
    first = min((d for d, _ in per_day), default=None)
    newest = max((d for d, _ in per_day), default=None)
    if total < min_deliveries or first is None or newest is None:
        return tuple(d for d in ALL_WEEKDAYS if not planned_off(d)) or ALL_WEEKDAYS
    # Not past the day after the newest delivery: days no record reached are not empty days.
    today = min(max(newest, today or newest), newest + timedelta(days=1))
    span = (today - first).days  # whole days, today not among them
    came_round = [0] * 7
    for offset in range(min(max(span, 0), 7)):
        came_round[(first + timedelta(days=offset)).weekday()] = len(range(offset, span, 7))
    counts = [0] * 7
    for day, count in per_day:
        if day < today:
            counts[day.weekday()] += count
    per_day_mean = sum(counts) / span if span > 0 else 0.0

    def off(weekday: int) -> bool:
        expected = per_day_mean * came_round[weekday]
        empty = counts[weekday] < 0.1 * expected
        # Both weekend days at once: with Saturday a day off and Sunday not yet, a Friday hand-over
        # delivered on Monday would count as two days beside the week's one.
        once = weekday in WEEKEND and expected >= DAY_OFF_MIN_EXPECTED and all(came_round[d] for d in WEEKEND)
        if came_round[weekday] >= 2 or once:
            return empty
        return planned_off(weekday)
    found = tuple(d for d in ALL_WEEKDAYS if not off(d))
    return found or ALL_WEEKDAYS


# --- the model -------------------------------------------------------------------------

def histogram(observations: list[tuple[date, date]], weekdays: tuple[int, ...]) -> list[float]:
    """Deliveries by working days after hand-over, from (handed over, delivered) dates."""
    counts: list[float] = []
    for handed_over, delivered in observations:
        days = working_days_between(handed_over, delivered, weekdays)
        if days >= len(counts):
            counts.extend([0] * (days + 1 - len(counts)))
        counts[days] += 1
    return counts


def mean_error(observations: list[TransitObserved], source: str) -> float | None:
    compared = sum(o.compared for o in observations)
    if not compared:
        return None
    total = sum(o.carrier_error_days if source == "carrier" else o.model_error_days for o in observations)
    return total / compared


def build_model(key: str, version: int, observations: list[TransitObserved], weekdays: tuple[int, ...],
                travelling: list[tuple[str, date, bool | None]] | None = None, today: date | None = None,
                carrier_dated: list[tuple[str, date, date]] | None = None) -> LaneModel:
    """A key's model from its window of deliveries and its carrier's working weekdays; while
    packages still ``travelling`` are counted (a young key), their histograms are Kaplan-Meier's
    with each travelling package at risk up to ``today``."""
    if travelling and today is not None:
        # One curve over every package: a half of the day with few deliveries and many still
        # travelling would otherwise weigh as its deliveries, not as its packages.
        transit_days, beyond = kaplan_meier([(o.handed_over, o.delivered) for o in observations],
                                            [(handed, today) for _, handed, _ in travelling], weekdays)
        afternoon: list[float] = []
        still = [0.0] * (len(transit_days) - 1) + [beyond] if beyond else []
    else:
        still = []
        transit_days = histogram([(o.handed_over, o.delivered) for o in observations], weekdays)
        afternoon = histogram([(o.handed_over, o.delivered) for o in observations if o.handed_over_afternoon],
                              weekdays)
    return LaneModel(key=key, version=version, transit_days=transit_days, afternoon_transit_days=afternoon,
                     travelling_days=still, working_weekdays=weekdays,
                     carrier_error_days=mean_error(observations, "carrier"),
                     model_error_days=mean_error(observations, "model"), compared=sum(o.compared for o in observations),
                     carrier_misses=summed([o.carrier_misses for o in observations]),
                     longest_silence_hours=max((o.longest_silence_hours for o in observations), default=None),
                     usual_silence_hours=usual_silence([o.longest_silence_hours for o in observations]),
                     out_for_delivery_hours=route_hours(observations),
                     carrier_lead_days=histogram([(handed, dated) for _, handed, dated in carrier_dated or []],
                                                 weekdays))


def usual_silence(silences: list[float]) -> float | None:
    """The silence (hours) that ``USUAL_SILENCE_SHARE`` of these packages' longest silences did
    not exceed; None below ``USUAL_SILENCE_MIN_DELIVERIES`` of them. A package with no two scans
    after acceptance (or an observation of an older worker) reports 0: not a silence measured."""
    measured = [hours for hours in silences if hours > 0]
    if len(measured) < USUAL_SILENCE_MIN_DELIVERIES:
        return None
    ordered = sorted(measured)
    return ordered[min(len(ordered), math.ceil(USUAL_SILENCE_SHARE * len(ordered))) - 1]


def kaplan_meier(delivered: list[tuple[date, date]], travelling: list[tuple[date, date]],
                 weekdays: tuple[int, ...]) -> tuple[list[float], float]:
    """Deliveries by working days after hand-over, corrected for the packages still travelling
    ((handed over, today) pairs): the Kaplan-Meier estimate, scaled to as many deliveries as
    were seen, and how much of its last cell is the remainder still travelling (0.0 if none).
    Empty without a delivery.

    A package travelling d working days by ``today`` was not delivered on days before d, and
    may still come today: it counts half on day d. The share still travelling past the longest
    delivery seen is put on the day after it ("not before then"), not after the longest
    travelling package: a lost one must not push the lane's estimate weeks out."""
    if not delivered:
        return [], 0.0
    deaths: dict[int, int] = {}
    censored: dict[int, int] = {}
    for handed_over, arrived in delivered:
        took = working_days_between(handed_over, arrived, weekdays)
        deaths[took] = deaths.get(took, 0) + 1
    survived = 0  # travelling packages known to have passed the last day with a delivery
    longest = max(deaths)
    for handed_over, today in travelling:
        so_far = working_days_between(handed_over, today, weekdays)
        if so_far > longest:
            survived += 1
        else:
            censored[so_far] = censored.get(so_far, 0) + 1
    at_risk = float(len(delivered) + survived + sum(censored.values()))
    surviving = 1.0
    cells: list[float] = []
    for days in range(longest + 1):
        died = deaths.get(days, 0)
        # Today is not over: a package travelling its d-th day may still come today, so it
        # counts half on day d (the actuarial life table's rule for an interval it leaves).
        hazard = died / (at_risk - censored.get(days, 0) / 2) if at_risk else 0.0
        cells.append(surviving * hazard)
        surviving *= 1 - hazard
        at_risk -= died + censored.get(days, 0)
    beyond = surviving if surviving > 1e-9 else 0.0
    if beyond:
        cells.append(beyond)
    scale = len(delivered) / sum(cells)
    return [cell * scale for cell in cells], beyond * scale


def route_hours(observations: list[TransitObserved]) -> list[float]:
    """Deliveries by their out-for-delivery scan's local hour (``ROUTE_CELLS``); empty when
    none reported it."""
    cells = [0.0] * ROUTE_CELLS
    for seen in observations:
        if seen.out_for_delivery_hour is not None:
            cells[seen.out_for_delivery_hour] += 1
    return cells if any(cells) else []


def not_out_for_delivery_by(model: LaneModel, late_probability: float, threshold: float,
                            min_deliveries: int) -> int | None:
    """The first local hour of the promised day from which a package not yet out for delivery
    is late with at least ``threshold`` probability; None if no hour gets there, or while fewer
    than ``min_deliveries`` reported their route hour.

    Bayes on the day: ``late_probability`` (the lane's, before the day) is the prior, and of
    the packages delivered that day a share S(h) had no out-for-delivery scan before hour h
    (those delivered without one count in S at every hour). Late given no scan by h is
    p / (p + (1 - p) S(h)). S counts one delivery more than seen with a late route, so a
    short history never makes the morning look certain.

    The rule speaks only once the routes do: from an hour by which at least ``threshold`` of
    the day's deliveries were out (S(h) <= 1 - threshold). The prior alone is the history's
    rule; fired at midnight on it, 32 of 49 such alerts in make quality were packages that came
    that day."""
    cells = model.out_for_delivery_hours
    total = sum(cells)
    if not cells or total < min_deliveries or not 0 < threshold <= 1:
        return None
    prior = min(max(late_probability, 0.0), 1.0)
    out_before = 0.0
    for hour in range(ROUTE_HOURS):
        silent = (total - out_before + 1) / (total + 1)
        if silent <= 1 - threshold and prior / (prior + (1 - prior) * silent) >= threshold:
            return hour
        out_before += cells[hour]
    return None


def _reached(model: LaneModel, handed_over: date, today: date) -> int:
    """The first working-day count a package handed over then can still reach today: today's
    if the carrier works today, else its next working day's."""
    weekdays = model.working_weekdays
    reached = working_days_between(handed_over, today, weekdays)
    if today > handed_over and today.weekday() not in weekdays:
        reached += 1
    elif today < handed_over:
        reached = 0
    return reached


def late_if_travelling_on(model: LaneModel, handed_over: date, promised: date, afternoon: bool | None = None
                          ) -> float | None:
    """The probability of arriving after ``promised`` of a package still travelling when the
    promised day begins (the prior of ``not_out_for_delivery_by``); None when no delivery in
    the model took that long."""
    reached = _reached(model, handed_over, promised)
    counts = model.transit_days_for(afternoon)
    remaining = sum(counts[reached:])
    if remaining <= 1e-9 or promised < handed_over:
        return None
    return _late_share(counts, model.working_weekdays, handed_over, promised, reached, remaining)


def _late_share(counts: list[float], weekdays: tuple[int, ...], handed_over: date, promised: date, reached: int,
                remaining: float) -> float:
    """The share of the deliveries still possible (``reached`` working days or more, of
    ``remaining`` in all) that came after ``promised``."""
    by_promise = working_days_between(handed_over, promised, weekdays) if promised >= handed_over else -1
    on_time = sum(counts[reached:by_promise + 1]) if by_promise >= reached else 0
    return 1 - on_time / remaining


def late_given_carrier_date(model: LaneModel, handed_over: date, today: date, promised: date,
                            carrier_date: date, afternoon: bool | None = None,
                            over_levels: LaneModel | None = None) -> float | None:
    """The probability of a delivery after ``promised`` once the carrier dated it
    ``carrier_date``: the lane's deliveries that took at least this long (the prior), each
    weighed by how often the carrier's dates at this lead missed by that much (the likelihood).

    A carrier date past the promise is more often one of its wrong ones than its dates in
    general are (the selection the plain miss rate ignores): where the lane's history puts most
    packages on time and the carrier's dates scatter by a day, one day late is weak evidence.
    None until ``CORRECTION_MIN_SCANS`` scans measured the carrier at that lead on ``model``'s
    key; at the longest lead (``LEADS - 1`` days or more), given ``over_levels`` (the
    carrier's misses over all its levels: one system dates every level), over all its levels.
    A fast level rarely gets a date that far ahead, and such a date past the promise is the
    usual sign of a late two-day package; at the shorter leads a level's own dates come every
    day and its misses there are its own (a one-day date two days ahead is often revised)."""
    if today > promised:
        return 1.0  # whatever day it comes now is after the promise
    lead = min(max((carrier_date - today).days, 0), LEADS - 1)
    misses = model.carrier_misses[lead * MISSES:(lead + 1) * MISSES]
    measured = sum(misses)
    if measured < CORRECTION_MIN_SCANS and over_levels is not None and lead == LEADS - 1:
        misses = over_levels.carrier_misses[lead * MISSES:(lead + 1) * MISSES]
        measured = sum(misses)
    if measured < CORRECTION_MIN_SCANS:
        return None
    reached = _reached(model, handed_over, today)
    counts, weekdays = model.transit_days_for(afternoon), model.working_weekdays
    # Half a delivery on each day up to past the carrier's date: a delay longer than any the
    # lane has seen stays possible. A date weeks past the longest delivery is late whatever
    # the carrier's habits (and a placeholder years out is not walked day by day).
    beyond = working_days_between(handed_over, carrier_date, weekdays) + MISS_RANGE + 1
    if beyond > len(counts) + BEYOND_LONGEST_DAYS:
        return 1.0
    late = weight = 0.0
    for days in range(reached, max(len(counts), beyond)):
        prior = (counts[days] if days < len(counts) else 0.0) + 0.5
        day = max(nth_working_day(handed_over, days, weekdays), today)
        # Half a scan keeps an unseen miss possible; misses past the range were counted at its
        # ends, and each day further is taken as ten times rarer.
        miss = (day - carrier_date).days
        cell = min(max(miss, -MISS_RANGE), MISS_RANGE) + MISS_RANGE
        further = max(abs(miss) - MISS_RANGE, 0)
        joint = prior * (misses[cell] + 0.5) / (measured + 0.5 * MISSES) * 0.1 ** further
        weight += joint
        if day > promised:
            late += joint
    return late / weight if weight > 0 else None


def corrected_carrier_date(model: LaneModel | None, carrier_date: date, today: date,
                           promised: date | None, over_levels: LaneModel | None = None) -> date | None:
    """The carrier's date moved by its usual miss at this lead on ``model``'s key (what the
    model's own estimate does with it): where the carrier's date is shown (before the model's
    accuracy is measured, or where the lane measured the carrier closer), a carrier measured
    optimistic is not shown raw. At a lead the key has not measured, the carrier's misses over
    all its levels (``over_levels``; the model's own estimate does not use those). None without a measured miss
    (``CORRECTION_MIN_SCANS``), with no move, or when the carrier's date or the moved one is
    after ``promised``: whether a package is late is the carrier's own date to say, weighed
    before a customer hears it (``estimate_after_promise``), not a correction's either way."""
    if promised is not None and carrier_date > promised:
        return None
    lead = (carrier_date - today).days
    correction = None if model is None else model.carrier_correction(lead)
    if correction is None and over_levels is not None:  # this level's misses at that lead not measured yet
        correction = over_levels.carrier_correction(lead)
    if not correction:
        return None
    moved = max(carrier_date + timedelta(days=correction), today)
    if moved == carrier_date or (promised is not None and moved > promised):
        return None
    return moved


def estimate(model: LaneModel, handed_over: date, today: date, promised: date | None,
             carrier_date: date | None = None, afternoon: bool | None = None) -> ModelEstimate | None:
    """The p50 delivery date of a package handed over on ``handed_over`` and not delivered by
    the start of ``today`` (both local dates), with its confidence and the probability of
    arriving after ``promised``. None when no delivery in the model took that long.

    With the carrier's date, the date is the carrier's, moved by its usual miss on this key at
    this lead once enough scans measured it (an optimistic carrier's date is pushed back); the
    confidence is then the histogram's share delivered by that date."""
    weekdays = model.working_weekdays
    reached = _reached(model, handed_over, today)
    counts = model.transit_days_for(afternoon)  # handed over in the same half of the day
    remaining = sum(counts[reached:])
    if remaining <= 1e-9:
        return None
    p50 = median_cell(counts, reached, remaining)
    cumulative = sum(counts[reached:p50 + 1])
    late = None if promised is None else _late_share(counts, weekdays, handed_over, promised, reached, remaining)
    day = max(nth_working_day(handed_over, p50, weekdays), today)
    # The remainder still travelling is in the whole histogram and in the morning's (a young
    # lane keeps no afternoon half), never in an afternoon half.
    still = model.travelling_days if afternoon is not True or counts is model.transit_days else []
    confidence = max(cumulative - sum(still[reached:p50 + 1]), 0.0) / remaining
    if carrier_date is not None:  # measured as closer than the histogram's own date (make quality)
        correction = model.carrier_correction((carrier_date - today).days) or 0
        day = max(carrier_date + timedelta(days=correction), today)
        shown = working_days_between(handed_over, day, weekdays)
        confidence = max(sum(counts[reached:shown + 1]) - sum(still[reached:shown + 1]), 0.0) / remaining \
            if shown >= reached else 0.0
    return ModelEstimate(key=f"{model.key}@{model.version}", estimate=day,
                         confidence=confidence, late_probability=late)
