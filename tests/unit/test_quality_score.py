"""Scoring trackline against the truth: what counts as a deserved notice, and how estimates are judged."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from models.effects import AlertKind
from models.order import DELAY_REASONS
from trackline.quality import score
from trackline.quality.world import Estimate, PackageTruth

T0 = datetime(2026, 11, 2, 12, tzinfo=UTC)  # a Monday


def journey(order_id: str, delivered_days: float | None, promised: date = date(2026, 11, 6),
            estimates: list[Estimate] | None = None) -> PackageTruth:
    delivered = T0 + timedelta(days=delivered_days) if delivered_days is not None else None
    scans = [(T0 + timedelta(hours=2), "in_transit"), (T0 + timedelta(days=1), "in_transit")]
    return PackageTruth(order_id=order_id, package_id=f"{order_id}-P1", tracking_number=order_id, carrier="UPS",
                        source="easypost", service_level="standard", origin="FC-RENO", destination_state="CA",
                        distance="same", time_zone="UTC", placed_at=T0 - timedelta(hours=2), promised=promised,
                        shipped_at=T0, delivered_at=delivered, lost=delivered is None, scans=scans,
                        estimates=estimates or [])


def command(order_id: str, type_: str, at: datetime, reason: str = "", estimate: date | None = None) -> dict:
    return {"type": type_, "order_id": order_id, "package_id": f"{order_id}-P1", "reason": reason,
            "caused_by_ingested_at": at.isoformat(), "estimated_delivery": estimate.isoformat() if estimate else None}


def test_a_notice_for_a_late_package_is_deserved_and_one_for_an_on_time_package_is_not() -> None:
    late, on_time = journey("LATE", 6.0), journey("ONTIME", 2.0)
    truth = {"LATE": late, "ONTIME": on_time}
    promise_end = datetime(2026, 11, 7, tzinfo=UTC)
    assert late.late_at == promise_end and on_time.late_at is None
    commands = [
        command("LATE", "delayed", promise_end + timedelta(hours=3),
                DELAY_REASONS[AlertKind.promise_missed]),
        command("LATE", "delayed", T0 + timedelta(days=1), DELAY_REASONS[AlertKind.estimate_after_promise]),
        command("ONTIME", "delayed", T0 + timedelta(days=1), DELAY_REASONS[AlertKind.estimate_after_promise]),
        command("ONTIME", "shipped", T0),
    ]
    table = score.notices_table(truth, commands)
    assert table["promise_missed"]["precision"] == 1.0 and table["promise_missed"]["recall"] == 1.0
    assert table["promise_missed"]["hours_after_true_moment"]["p50"] == pytest.approx(3.0)
    assert table["estimate_after_promise"]["precision"] == 0.5
    assert table["estimate_after_promise"]["hours_after_true_moment"]["p50"] == pytest.approx(-84.0)  # 3.5 days ahead
    assert table["any delay"]["orders"] == 2 and table["any delay"]["recall"] == 1.0


def test_a_lost_notice_is_judged_against_lost_packages() -> None:
    truth = {"LOST": journey("LOST", None), "OK": journey("OK", 2.0)}
    table = score.notices_table(truth, [command("LOST", "exception", T0 + timedelta(days=20), "lost")])
    assert table[score.LOST]["precision"] == 1.0 and table[score.LOST]["recall"] == 1.0


def test_estimates_are_judged_at_shipping_and_at_each_scan_with_what_was_known_then() -> None:
    truth_date = date(2026, 11, 5)
    t = journey("E", 3.0, estimates=[Estimate(T0 + timedelta(hours=2), T0 + timedelta(hours=3), date(2026, 11, 3)),
                                     Estimate(T0 + timedelta(days=1), T0 + timedelta(days=1), truth_date)])
    table = score.estimates_table({"E": t}, [command("E", "order_confirmed", T0 - timedelta(hours=2),
                                                     estimate=date(2026, 11, 6))])
    assert table["at shipping"]["carrier"]["coverage"] == 0.0  # nothing from the carrier yet
    assert table["at shipping"]["told"]["mae_days"] == 1.0
    assert table["at shipping"]["shown"]["coverage"] == 0.0  # no estimate rows given
    scans = table["at each scan"]["carrier"]
    # At the first scan the carrier's first date had not arrived (received an hour later); at the
    # second, its revision to the true date had.
    assert scans["points"] == 2 and scans["coverage"] == 0.5 and scans["within_0_days"] == 1.0


def test_from_day_7_scores_only_the_packages_shipped_once_lanes_had_a_week_of_history() -> None:
    import dataclasses

    first = journey("FIRST", 3.0)
    later = journey("LATER", 3.0)
    week = timedelta(days=7)
    later = dataclasses.replace(later, placed_at=later.placed_at + week, shipped_at=later.shipped_at + week,
                                delivered_at=later.delivered_at + week,  # type: ignore[operator]
                                scans=[(at + week, status) for at, status in later.scans])
    table = score.estimates_table({"FIRST": first, "LATER": later}, [])
    assert table["at each scan"]["promise"]["points"] == 4
    assert table["from day 7"]["promise"]["points"] == 2


def test_visibility_is_the_share_of_the_journey_after_the_first_date_told() -> None:
    t = journey("V", 3.0)
    span = t.delivered_at - t.placed_at  # type: ignore[operator]
    half = t.placed_at + span / 2
    assert score.visibility({"V": t}, [command("V", "estimate_set", half, estimate=date(2026, 11, 6))])["mean"] \
        == pytest.approx(0.5)
    assert score.visibility({"V": t}, [])["mean"] == 0.0


def test_a_date_already_past_is_no_estimate() -> None:
    """Told the promise at the start and nothing after: once the promised day has passed, the
    customer holds no date ahead of them."""
    t = journey("P", 6.0, promised=date(2026, 11, 4))  # delivered Nov 8, 12:00
    shares = score.visibility({"P": t}, [command("P", "estimate_set", t.placed_at, estimate=date(2026, 11, 4))])
    # Placed Nov 2 10:00; the date holds until Nov 5 00:00 (62 of 146 hours).
    assert shares["mean"] == pytest.approx(62 / 146, abs=0.02)


def test_each_alert_counts_once_and_a_stale_alert_is_right_only_during_a_true_silence() -> None:
    t = journey("S", 5.0)
    t.stale = (T0 + timedelta(days=1, hours=2), T0 + timedelta(days=3))

    def alert(alert_id: str, state: str, at: datetime) -> dict:
        return {"alert_id": alert_id, "alert_kind": "in_transit_stale", "order_id": "S", "package_id": "S-P1",
                "state": state, "at": at.isoformat()}

    alerts = [alert("a1", "open", T0 + timedelta(days=2)), alert("a1", "closed", T0 + timedelta(days=3)),
              alert("a2", "open", T0 + timedelta(days=4)), alert("a2", "closed", T0 + timedelta(days=4, hours=6))]
    row = score.alerts_table({"S": t}, alerts, T0 + timedelta(days=10))["in_transit_stale"]
    assert row["alerts"] == 2 and row["precision"] == 0.5
    assert row["false_hours_open"]["p50"] == pytest.approx(6.0)


def test_stale_recall_counts_the_silent_journeys_alerted_during_their_silence() -> None:
    silent, missed, calm, noisy = journey("S", 5.0), journey("M", 5.0), journey("C", 4.0), journey("N", 4.0)
    lost = journey("L", None)  # a lost package's silence is presumed_lost's to judge
    for t in (silent, missed):
        t.stale = (T0 + timedelta(days=1, hours=2), T0 + timedelta(days=3))
    alerts = [alert("S", "in_transit_stale", "open", T0 + timedelta(days=1, hours=14)),
              # M's alert came only after its silence ended: not caught (nor by a closing record).
              alert("M", "in_transit_stale", "open", T0 + timedelta(days=3, hours=1)),
              alert("M", "in_transit_stale", "closed", T0 + timedelta(days=2)),
              alert("N", "in_transit_stale", "open", T0 + timedelta(days=2)),
              alert("L", "in_transit_stale", "open", T0 + timedelta(days=2)),
              alert("C", "promise_missed", "open", T0 + timedelta(days=5))]
    found = score.stale_table({t.order_id: t for t in (silent, missed, calm, noisy, lost)}, alerts)
    assert (found["silent"], found["recall"]) == (2, 0.5)
    assert found["hours_after_silence_began"]["p50"] == pytest.approx(12.0)
    assert (found["never_silent"], found["never_silent_alerted"]) == (2, 1)


def alert(order_id: str, kind: str, state: str, at: datetime) -> dict:
    return {"alert_id": f"{order_id}-{kind}", "alert_kind": kind, "order_id": order_id, "state": state,
            "at": at.isoformat()}


def test_predicted_late_is_judged_by_whether_the_package_missed_and_how_early_it_said_so() -> None:
    # Promised Friday 2026-11-06 (UTC): the promised day ends Saturday 00:00.
    truth = {"LATE": journey("LATE", 6.0), "ALSO_LATE": journey("ALSO_LATE", 7.0), "ONTIME": journey("ONTIME", 2.0)}
    alerts = [alert("LATE", "predicted_late", "open", datetime(2026, 11, 5, tzinfo=UTC)),
              alert("LATE", "predicted_late", "closed", datetime(2026, 11, 8, 12, tzinfo=UTC)),
              alert("ONTIME", "predicted_late", "open", datetime(2026, 11, 3, tzinfo=UTC)),
              alert("ALSO_LATE", "promise_missed", "open", datetime(2026, 11, 7, tzinfo=UTC))]
    row = score.predicted_late_table(truth, alerts)["standard"]
    assert (row["alerts"], row["precision"], row["late"], row["recall"]) == (2, 0.5, 2, 0.5)
    assert row["hours_before_promise"]["p50"] == 48.0 and row["min_hours_before_promise"] == 48.0
    assert row["recall_in_time"] == 0.5 and score.predicted_late_table(truth, alerts)["all levels"]["late"] == 2
    # Opened 12 hours before the promised day ended: in time for nothing on standard service.
    late_alert = [alert("LATE", "predicted_late", "open", datetime(2026, 11, 6, 12, tzinfo=UTC))]
    assert score.predicted_late_table(truth, late_alert)["standard"]["recall_in_time"] == 0.0


def test_the_date_shown_is_compared_with_the_carriers_on_the_same_scans() -> None:
    truth_date = date(2026, 11, 5)
    t = journey("E", 3.0, estimates=[Estimate(T0 + timedelta(hours=1), T0 + timedelta(hours=1), date(2026, 11, 2))])
    # Shown: the model's Thursday from the first scan on (carrier said Monday, 3 days off).
    rows = [{"order_id": "E", "ingested_at": (T0 + timedelta(hours=1)).isoformat(), "detail": "2026-11-05",
             "attributes": {"model": "2026-11-05"}}]
    compared = score.compared_with_carrier({"E": t}, rows)
    assert (compared["points"], compared["shown_mae_days"], compared["carrier_mae_days"]) == (2, 0.0, 3.0)
    table = score.estimates_table({"E": t}, [], rows)
    assert table["at each scan"]["model"]["within_0_days"] == 1.0 and truth_date == t.delivered_date
    assert table["at shipping"]["model"]["coverage"] == 0.0  # nothing shown before the first row


def test_predicted_late_from_the_route_rule_is_also_scored_on_its_own() -> None:
    late, on_time = journey("LATE", 6.0), journey("ONTIME", 2.0)
    truth = {"LATE": late, "ONTIME": on_time}
    route = {**alert("LATE", "predicted_late", "open", T0 + timedelta(days=4)),
             "detail": "not out for delivery by 09:00 on the promised 2026-11-06 (model lane|ups@3)"}
    history = {**alert("ONTIME", "predicted_late", "open", T0 + timedelta(days=1)),
               "detail": "85% likely after the promised 2026-11-06 (model lane|ups@3)"}
    table = score.alerts_table(truth, [route, history], T0 + timedelta(days=10))
    assert (table["predicted_late"]["alerts"], table["predicted_late"]["precision"]) == (2, 0.5)
    assert (table["predicted_late (route)"]["alerts"], table["predicted_late (route)"]["precision"]) == (1, 1.0)
