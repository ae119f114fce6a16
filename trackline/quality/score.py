"""How right trackline was: its notices, alerts and estimates against what really happened.

Pure: the world's truth (``trackline.quality.world``), the commands customers were sent and
the alerts ops saw go in; figures come out. Every time here is event time: a notice's time is
``caused_by_ingested_at``, the moment (on the pipeline's event-time clock) it was decided.

- A delay notice (``delayed``, or ``exception`` with reason lost) is deserved when the package
  really missed its promise (delivered after the promised day where the customer lives, or
  lost). Per detection kind: precision, recall against every late package, and how long after
  the true moment (the end of the promised day) the customer heard; negative is before it.
- Ops alerts the same way, with how long the false ones stayed open.
- Estimates, measured at shipping and at each later scan of each delivered package: the
  promise, the carrier's latest estimate received by then, our model's date (models.transit),
  the date trackline showed (the lookup and tracking page: model or carrier, whichever the lane
  measured closer) and the date it last told the customer; the share within 0 and within 1
  day of the true delivery date, and the mean absolute error in days.
- Predicted-late alerts per service level: precision, the share of late packages they caught,
  and how long before the end of the promised day they opened.
- Visibility: the share of each delivered journey (order placed -> delivered) during which the
  customer had been told a delivery date.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from statistics import mean, quantiles
from typing import Any
from zoneinfo import ZoneInfo

from models.order import DELAY_REASONS, PREDICTED_LATE_REASON
from trackline.quality.world import PackageTruth

_KIND_OF_REASON = {reason: kind.value for kind, reason in DELAY_REASONS.items()} | {
    PREDICTED_LATE_REASON: "predicted_late"}
LOST = "presumed_lost"
PREDICTED_LATE = "predicted_late"
ROUTE_DETAIL = "not out for delivery"  # the route rule's alert detail (models.detection)


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class Notice:
    kind: str  # the detection kind behind it
    package_id: str
    order_id: str
    at: datetime  # event time it was decided


def delay_notices(commands: list[dict[str, Any]]) -> list[Notice]:
    """The customer-facing delay notices among the commands, each with its detection kind."""
    found = []
    for c in commands:
        if c["type"] == "delayed":
            kind = _KIND_OF_REASON.get(c.get("reason", ""), "other")
        elif c["type"] == "exception" and c.get("reason") == "lost":
            kind = LOST
        else:
            continue
        found.append(Notice(kind, c.get("package_id", ""), c["order_id"], moment(c["caused_by_ingested_at"])))
    return found


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _hours(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None}
    if len(values) == 1:
        return {"p50": values[0], "p90": values[0]}
    cuts = quantiles(values, n=10, method="inclusive")
    return {"p50": cuts[4], "p90": cuts[8]}


def notices_table(truth: dict[str, PackageTruth], commands: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per detection kind (and "any"): notices, precision, recall, hours from the true moment."""
    late = {t.order_id for t in truth.values() if t.late}
    lost = {t.order_id for t in truth.values() if t.lost}
    notices = [n for n in delay_notices(commands) if n.order_id in truth]
    by_kind: dict[str, list[Notice]] = defaultdict(list)
    for n in notices:
        by_kind[n.kind].append(n)
    by_kind["any delay"] = [n for n in notices if n.kind != LOST]
    table: dict[str, dict[str, Any]] = {}
    for kind, found in sorted(by_kind.items()):
        deserved = lost if kind == LOST else late
        orders = {n.order_id for n in found}
        first: dict[str, datetime] = {}
        for n in found:
            first[n.order_id] = min(first.get(n.order_id, n.at), n.at)
        hours = [(at - late_at).total_seconds() / 3600 for o, at in first.items()
                 if o in deserved and (late_at := truth[o].late_at) is not None]
        table[kind] = {"notices": len(found), "orders": len(orders),
                       "precision": _ratio(len(orders & deserved), len(orders)),
                       "recall": _ratio(len(orders & deserved), len(deserved)), "deserved": len(deserved),
                       "hours_after_true_moment": _hours(hours)}
    return table


def alerts_table(truth: dict[str, PackageTruth], alerts: list[dict[str, Any]], end: datetime
                 ) -> dict[str, dict[str, Any]]:
    """Ops alerts per kind, each alert once (by its id): precision against the truth of its kind
    at the moment it opened, and how long the false ones stayed open (until closed, or until
    the end of the run)."""
    opened: dict[str, tuple[str, str, datetime]] = {}  # alert id -> (kind, order, opened at)
    closed: dict[str, datetime] = {}
    route: set[str] = set()  # predicted_late opened by the promised morning's route rule
    for a in alerts:
        if a["order_id"] not in truth:
            continue
        at = moment(a["at"])
        if a["state"] == "open":
            known = opened.get(a["alert_id"])
            opened[a["alert_id"]] = (a["alert_kind"], a["order_id"], min(known[2], at) if known else at)
            if a["alert_kind"] == PREDICTED_LATE and str(a.get("detail", "")).startswith(ROUTE_DETAIL):
                route.add(a["alert_id"])
        else:
            closed[a["alert_id"]] = max(closed.get(a["alert_id"], at), at)
    table: dict[str, dict[str, Any]] = {}
    rows = [(kind, [i for i, (k, _, _) in opened.items() if k == kind])
            for kind in sorted({k for k, _, _ in opened.values()})]
    if route:
        rows.append((f"{PREDICTED_LATE} (route)", sorted(route)))
    for label, ids in rows:
        kind = opened[ids[0]][0]
        right = {i for i in ids if _deserved(kind, truth[opened[i][1]], opened[i][2])}
        false_open = [((closed.get(i) or end) - opened[i][2]).total_seconds() / 3600 for i in ids if i not in right]
        table[label] = {"alerts": len(ids), "precision": _ratio(len(right), len(ids)),
                        "false_hours_open": _hours(false_open)}
    return table


def stale_table(truth: dict[str, PackageTruth], alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """in_transit_stale against the journeys that really went silent for days: how many of them
    had an alert open during the silence (recall), how long after the silence began it opened,
    and how many packages that were never silent had one (each package once)."""
    opened: dict[str, list[datetime]] = defaultdict(list)
    for a in alerts:
        if a["alert_kind"] == "in_transit_stale" and a["state"] == "open" and a["order_id"] in truth:
            opened[a["order_id"]].append(moment(a["at"]))
    silences = {t.order_id: t.stale for t in truth.values() if t.stale is not None}
    found: dict[str, float] = {}  # silent order -> hours from the silence's start to its first alert in it
    for order_id, (began, ended) in silences.items():
        during = [at for at in opened.get(order_id, []) if began <= at <= ended]
        if during:
            found[order_id] = (min(during) - began).total_seconds() / 3600
    never_silent = [t for t in truth.values() if t.stale is None and not t.lost]
    return {"silent": len(silences), "recall": _ratio(len(found), len(silences)),
            "hours_after_silence_began": _hours(list(found.values())),
            "never_silent": len(never_silent),
            "never_silent_alerted": sum(1 for t in never_silent if t.order_id in opened)}


def _deserved(kind: str, truth: PackageTruth, opened_at: datetime) -> bool:
    """Whether an alert of ``kind`` opened at ``opened_at`` told ops something true."""
    if kind == "in_transit_stale":  # the package was silent then: a true silence, or lost
        last_scan = truth.scans[-1][0] if truth.scans else truth.shipped_at
        return (truth.stale is not None and truth.stale[0] <= opened_at <= truth.stale[1]) or (
            truth.lost and opened_at >= last_scan)
    if kind == "presumed_lost":
        return truth.lost
    return truth.late


@dataclass
class EstimateScore:
    points: int = 0
    with_estimate: int = 0
    exact: int = 0
    within_1: int = 0
    abs_days: float = 0.0

    def add(self, estimate: date | None, true: date) -> None:
        self.points += 1
        if estimate is None:
            return
        off = abs((estimate - true).days)
        self.with_estimate += 1
        self.exact += off == 0
        self.within_1 += off <= 1
        self.abs_days += off

    def row(self) -> dict[str, float | int | None]:
        n = self.with_estimate
        return {"points": self.points, "coverage": _ratio(n, self.points), "within_0_days": _ratio(self.exact, n),
                "within_1_day": _ratio(self.within_1, n), "mae_days": self.abs_days / n if n else None}


ESTIMATE_SOURCES = ("promise", "carrier", "model", "shown", "told")


def estimates_table(truth: dict[str, PackageTruth], commands: list[dict[str, Any]],
                    estimates: list[dict[str, Any]] | None = None
                    ) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """Promise, carrier, our model, the date shown and the date told, at shipping and at each
    later scan. ``estimates`` are the history rows of record type "estimate": each change of the
    date shown (detail) or of the model's date (attribute "model"), at its ingest time."""
    told: dict[str, list[tuple[datetime, date]]] = defaultdict(list)
    for c in commands:
        if c.get("estimated_delivery") and c["order_id"] in truth:
            told[c["order_id"]].append((moment(c["caused_by_ingested_at"]),
                                        date.fromisoformat(c["estimated_delivery"])))
    shown: dict[str, list[tuple[datetime, date | None, date | None]]] = defaultdict(list)
    for row in estimates or []:
        if row["order_id"] in truth:
            model = (row.get("attributes") or {}).get("model")
            shown[row["order_id"]].append((moment(row["ingested_at"]), date.fromisoformat(row["detail"]),
                                           date.fromisoformat(model) if model else None))
    for dates in told.values():
        dates.sort()
    for rows in shown.values():
        rows.sort(key=lambda r: r[0])
    scores = {point: {source: EstimateScore() for source in ESTIMATE_SOURCES}
              for point in ("at shipping", "at each scan", "from day 7")}
    # The first week is a cold start (no lane has delivered history yet); from day 7 on is
    # what a deployment with a week of history shows.
    warm = min((t.placed_at for t in truth.values()), default=None)
    warm = warm + timedelta(days=7) if warm is not None else None
    for t in truth.values():
        if t.delivered_date is None:
            continue
        # At shipping: once the shipment is known (its event arrives within 90 s of it).
        moments = [("at shipping", t.shipped_at + timedelta(minutes=2))] + [("at each scan", at) for at, _ in t.scans
                                                     if t.shipped_at <= at < (t.delivered_at or at)]
        warm_package = warm is not None and t.shipped_at >= warm
        for point, at in moments:
            carrier = [e.delivery_date for e in t.estimates if e.received_at <= at]
            ours = [d for when, d in told.get(t.order_id, []) if when <= at]
            rows = [r for r in shown.get(t.order_id, []) if r[0] <= at]
            for counted in [point, "from day 7"] if warm_package and point == "at each scan" else [point]:
                scores[counted]["promise"].add(t.promised, t.delivered_date)
                scores[counted]["carrier"].add(carrier[-1] if carrier else None, t.delivered_date)
                scores[counted]["model"].add(rows[-1][2] if rows else None, t.delivered_date)
                scores[counted]["shown"].add(rows[-1][1] if rows else None, t.delivered_date)
                scores[counted]["told"].add(ours[-1] if ours else None, t.delivered_date)
    return {point: {source: s.row() for source, s in row.items()} for point, row in scores.items()}


def compared_with_carrier(truth: dict[str, PackageTruth], estimates: list[dict[str, Any]]
                          ) -> dict[str, float | int | None]:
    """The date shown against the carrier's on the same points: each scan of a delivered package
    at which both had a date (the target: a lower mean absolute error than the carrier's)."""
    shown: dict[str, list[tuple[datetime, date]]] = defaultdict(list)
    for row in estimates:
        if row["order_id"] in truth:
            shown[row["order_id"]].append((moment(row["ingested_at"]), date.fromisoformat(row["detail"])))
    ours, theirs = EstimateScore(), EstimateScore()
    for t in truth.values():
        if t.delivered_date is None:
            continue
        rows = sorted(shown.get(t.order_id, []))
        for at, _ in t.scans:
            if not t.shipped_at <= at < (t.delivered_at or at):
                continue
            carrier = [e.delivery_date for e in t.estimates if e.received_at <= at]
            mine = [d for when, d in rows if when <= at]
            if carrier and mine:
                ours.add(mine[-1], t.delivered_date)
                theirs.add(carrier[-1], t.delivered_date)
    return {"points": ours.points, "shown_mae_days": ours.row()["mae_days"],
            "carrier_mae_days": theirs.row()["mae_days"], "shown_within_1_day": ours.row()["within_1_day"],
            "carrier_within_1_day": theirs.row()["within_1_day"]}


def predicted_late_table(truth: dict[str, PackageTruth], alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """predicted_late alerts per service level and over all: precision (the package did miss
    its promise), recall (late packages with one opened before the promised day ended), recall
    in time (opened with the lead issue 13 asks for: 24 hours before the promised day ended for
    standard and two-day service, a quarter of the promised transit time for faster levels) and
    the hours from opening to the end of the promised day (the time left to act)."""
    first: dict[str, datetime] = {}  # order -> first predicted_late opened
    for a in alerts:
        if a["alert_kind"] == "predicted_late" and a["state"] == "open" and a["order_id"] in truth:
            at = moment(a["at"])
            first[a["order_id"]] = min(first.get(a["order_id"], at), at)
    table: dict[str, dict[str, Any]] = {}
    levels = sorted({t.service_level for t in truth.values()})
    for level in [*levels, "all levels"]:
        journeys = [t for t in truth.values() if level in (t.service_level, "all levels")]
        flagged = [t for t in journeys if t.order_id in first]
        late = [t for t in journeys if t.late]
        lead = [(_promise_end(t) - first[t.order_id]).total_seconds() / 3600 for t in flagged if t.late]
        table[level] = {"alerts": len(flagged), "precision": _ratio(sum(t.late for t in flagged), len(flagged)),
                        "late": len(late), "recall": _ratio(sum(1 for t in late if t.order_id in first
                                                                 and first[t.order_id] < _promise_end(t)), len(late)),
                        "recall_in_time": _ratio(sum(1 for t in late if t.order_id in first
                                                     and _promise_end(t) - first[t.order_id] >= lead_wanted(t)),
                                                 len(late)),
                        "hours_before_promise": _hours(lead),
                        "min_hours_before_promise": min(lead) if lead else None}
    return table


def lead_wanted(t: PackageTruth) -> timedelta:
    """How long before the promised day ends a predicted_late should open (issue 13): a quarter
    of the promised transit time for the levels faster than two-day, else 24 hours."""
    if t.service_level in ("same_day", "one_day"):
        return max(timedelta(0), (_promise_end(t) - t.shipped_at) / 4)
    return timedelta(hours=24)


def _promise_end(t: PackageTruth) -> datetime:
    return datetime.combine(t.promised + timedelta(days=1), datetime.min.time(), ZoneInfo(t.time_zone))


def visibility(truth: dict[str, PackageTruth], commands: list[dict[str, Any]]) -> dict[str, float | None]:
    """Share of each delivered journey during which the customer held a date still ahead of
    them: the latest date told, until the end of that day where they live (a passed promise
    is no estimate). Walked hour by hour."""
    told: dict[str, list[tuple[datetime, date]]] = defaultdict(list)
    for c in commands:
        if c["order_id"] in truth and c.get("estimated_delivery"):
            told[c["order_id"]].append((moment(c["caused_by_ingested_at"]),
                                        date.fromisoformat(c["estimated_delivery"])))
    shares = []
    for t in truth.values():
        if t.delivered_at is None:
            continue
        dates = sorted(told.get(t.order_id, []))
        zone = ZoneInfo(t.time_zone)
        steps = max(1, int((t.delivered_at - t.placed_at).total_seconds() // 3600))
        seen = 0
        for step in range(steps):
            at = t.placed_at + (t.delivered_at - t.placed_at) * (step + 0.5) / steps
            latest = [d for when, d in dates if when <= at]
            seen += bool(latest) and latest[-1] >= at.astimezone(zone).date()
        shares.append(seen / steps)
    if not shares:
        return {"mean": None, "lowest_decile": None}
    shares.sort()
    return {"mean": mean(shares), "lowest_decile": shares[max(0, len(shares) // 10 - 1)]}


def scored(truth: dict[str, PackageTruth], start: datetime, days: float) -> dict[str, PackageTruth]:
    """The journeys placed in the first ``days``: the rest may not have ended when the run does."""
    until = start + timedelta(days=days)
    return {o: t for o, t in truth.items() if t.placed_at < until}
