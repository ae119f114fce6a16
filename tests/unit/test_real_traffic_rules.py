"""Rules for traffic as it really arrives: late, early, out of order, ahead of its order,
with carrier details the customer must act on, and with a bug that must cost one event only.

Expectations are worked out from the domain by hand (the order in tests.conftest: two-day
service placed at T0 = 2026-11-02 08:00 UTC, ship by 20:00, promised for 2026-11-04).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.effects import HistoryRecord, NotificationCommand
from models.events import ExceptionReason, PackageStatus
from models.feed_latency import FeedLatency
from models.order import apply_batch
from models.preferences import address
from models.thresholds import Thresholds
from models.watermark import PartitionProgress, ingest_watermark
from tests.conftest import at, placed, run, scan, shipped, tick

S = PackageStatus
HOUR = 60


def commands(effects, type_=None):
    return [c for c in effects if isinstance(c, NotificationCommand) and (type_ is None or c.type.value == type_)]


def test_an_action_required_detail_tells_the_customer_once_per_reason_and_keeps_the_status():
    state, _ = run([placed(), shipped(), scan(S.in_transit, 200)])
    flagged = scan(S.in_transit, 300, action_reason=ExceptionReason.address_issue)
    state, effects = run([flagged, scan(S.in_transit, 400, action_reason=ExceptionReason.address_issue)], state)
    (exception,) = commands(effects, "exception")
    assert exception.reason == "address_issue" and "address" in exception.next_step
    assert state.packages["P1"].status is S.in_transit  # what the carrier says
    state, other = run([scan(S.in_transit, 500, action_reason=ExceptionReason.package_held)], state)
    (held,) = commands(other, "exception")
    assert held.command_id != exception.command_id


def test_a_failed_attempt_with_a_carrier_reason_says_why():
    state, _ = run([placed(), shipped(), scan(S.in_transit, 200)])
    state, effects = run([scan(S.attempt_failed, 30 * HOUR, action_reason=ExceptionReason.recipient_unavailable)],
                         state)
    (attempt,) = commands(effects, "attempt_failed")
    assert "available" in attempt.reason.lower()
    assert [c.reason for c in commands(effects, "exception")] == ["recipient_unavailable"]


def test_a_package_shipped_before_its_order_is_known_waits_for_the_customer():
    _, early = run([shipped()])
    assert commands(early) == []  # nobody to address it to yet
    state, _ = run([shipped()])
    state, effects = run([placed()], state)
    shipped_ = commands(effects, "shipped")
    assert [c.customer_id for c in shipped_] == ["CUST-9"]
    assert {c.type.value for c in commands(effects)} >= {"order_confirmed", "shipped"}


def test_a_shipped_notice_seen_two_days_late_is_recorded_stale_not_sent():
    late = shipped().model_copy(update={"ingested_at": at(60 + 48 * HOUR)})
    _, effects = run([placed(), late])
    (command,) = commands(effects, "shipped")
    sent, row = address(command, None)
    assert sent is None and row.detail == "suppressed: stale"
    on_time = shipped().model_copy(update={"ingested_at": at(90)})
    _, effects = run([placed(), on_time])
    sent, row = address(commands(effects, "shipped")[0], None)
    assert sent is not None and row.detail == "queued"


def test_out_for_delivery_seen_after_its_local_day_is_stale_but_delivered_never_is():
    ofd = scan(S.out_for_delivery, 24 * HOUR, ingested_at=at(24 * HOUR + 20 * HOUR))  # next day
    done = scan(S.delivered, 25 * HOUR, ingested_at=at(24 * HOUR + 20 * HOUR))
    _, effects = run([placed(), shipped(), ofd, done])
    assert address(commands(effects, "out_for_delivery")[0], None)[0] is None
    assert address(commands(effects, "delivered")[0], None)[0] is not None


def test_a_scan_dated_hours_ahead_of_its_arrival_is_rejected_and_the_rest_applies():
    future = scan(S.delivered, 600, ingested_at=at(300))  # five hours ahead: a carrier clock gone wrong
    state, effects = run([placed(), shipped(), future, scan(S.in_transit, 200)])
    assert state.packages["P1"].status is S.in_transit
    rejected = [r for r in effects if isinstance(r, HistoryRecord) and r.detail == "rejected: future"]
    assert [r.event_id for r in rejected] == [future.event_id]
    assert commands(effects, "delivered") == []


def test_a_bug_on_one_event_costs_that_event_only(monkeypatch):
    import models.order as order

    original = order._on_scan

    def broken(state, event, effects, rules):
        if event.raw_code == "poison":
            raise KeyError("a bug")
        return original(state, event, effects, rules)

    monkeypatch.setattr(order, "_on_scan", broken)
    poison = scan(S.in_transit, 250, raw_code="poison")
    events = [placed(), shipped(), scan(S.in_transit, 200), poison, scan(S.delivered, 30 * HOUR),
              placed("ORD-2")]
    latency = FeedLatency(Thresholds())
    outcome = apply_batch({}, events, latency=latency)
    assert [(i, type(e).__name__) for i, e in outcome.failed] == [(3, "KeyError")]
    assert outcome.changed["ORD-1"].packages["P1"].status is S.delivered
    # The order's other events were applied again without the poison, but every scan's feed
    # delay counts once: the allowance learns from what came, not from how often it was applied.
    assert list(latency.delays[("easypost", "ups")]) == [60.0, 60.0, 60.0]
    assert poison.event_id not in outcome.changed["ORD-1"].seen_event_ids  # rolled back, not half-applied
    assert [c.type.value for c in commands(outcome.effects) if c.order_id == "ORD-1"].count("delivered") == 1
    assert "ORD-2" in outcome.changed


def test_the_allowance_learns_a_feed_an_hour_late_and_is_clamped():
    rules = Thresholds(feed_allowance_start_minutes=30, feed_allowance_floor_minutes=5,
                       feed_allowance_cap_minutes=120, feed_latency_min_samples=20)
    latency = FeedLatency(rules)
    assert latency.allowance("x12-214", "odfl") == timedelta(minutes=30)  # nothing seen yet
    for _ in range(50):
        latency.observe("x12-214", "odfl", 3600)
    assert latency.allowance("x12-214", "odfl") == timedelta(hours=1)
    assert latency.allowance("", "odfl") == timedelta(hours=1)  # no source known: the carrier's slowest
    for _ in range(50):
        latency.observe("easypost", "ups", 10)
    assert latency.allowance("easypost", "ups") == timedelta(minutes=5)  # the floor
    for _ in range(50):
        latency.observe("generic", "slowpost", 10 * 3600)
    assert latency.allowance("generic", "slowpost") == timedelta(hours=2)  # the cap
    restored = FeedLatency.load(latency.dump(), rules)
    assert restored.allowance("x12-214", "odfl") == timedelta(hours=1)


def test_a_batch_applied_again_after_a_failed_send_does_not_count_its_feed_delays_twice():
    # The order tracker applies a batch, its send fails, it applies the same batch again: the
    # allowance must be what one application gives, or the retry's deadlines differ from the first's.
    rules = Thresholds(feed_allowance_start_minutes=30, feed_allowance_floor_minutes=1,
                       feed_allowance_cap_minutes=600, feed_latency_min_samples=20, feed_latency_samples=100)
    latency = FeedLatency(rules)
    for _ in range(80):
        latency.observe("easypost", "ups", 600)  # earlier batches: ten minutes late
    latency.changed = False  # stored
    stored = latency.dump()

    def apply_batch() -> None:
        for _ in range(30):
            latency.observe("easypost", "ups", 4 * 3600)  # this batch: four hours late
        latency.observe("shippo", "usps", 60)  # a feed first seen in this batch

    once = FeedLatency.load(stored, rules)
    for _ in range(30):
        once.observe("easypost", "ups", 4 * 3600)
    once.observe("shippo", "usps", 60)

    latency.begin()
    apply_batch()
    latency.rollback()  # the send failed: apply again
    apply_batch()
    assert latency.dump() == once.dump()
    assert latency.allowance("easypost", "ups") == once.allowance("easypost", "ups") == timedelta(hours=4)
    assert latency.changed

    latency.begin()
    latency.rollback()  # a retry of a batch that observed nothing: as stored
    assert latency.dump() == once.dump()


def test_an_hour_late_feed_does_not_tell_a_customer_of_a_promise_it_met():
    # Delivered 23:30 on the promised day; the carrier's feed reports it an hour later.
    rules = Thresholds(feed_allowance_start_minutes=90)
    midnight = (datetime(2026, 11, 5, tzinfo=UTC) - at(0)).total_seconds() / 60
    state, _ = run([placed(), shipped(), scan(S.in_transit, 200)])
    events = [tick(midnight), scan(S.delivered, midnight - 30, ingested_at=at(midnight + 30)),
              tick(midnight + 90)]
    outcome = apply_batch({"ORD-1": state}, events, rules)
    assert [a for a in outcome.effects if getattr(a, "alert_kind", None) == "promise_missed"]  # ops saw it
    assert commands(outcome.effects, "delayed") == []


@pytest.mark.parametrize("progress, expected", [
    # Read to its end, quiet: the wall clock.
    ([PartitionProgress(at(10), 5, 5, 5, 5, 3.0)], at(100)),
    # Records left to read: the ingest time of the last one read.
    ([PartitionProgress(at(10), 5, 5, 5, 9, 3.0)], at(10)),
    # Handed to the agent but not processed yet.
    ([PartitionProgress(at(10), 4, 5, 5, 5, 3.0)], at(10)),
    # At the reported end, but records arrived a moment ago (the broker reports the end short).
    ([PartitionProgress(at(10), 5, 5, 5, 5, 0.1)], at(10)),
    # Nothing read yet on a partition with a backlog: no watermark, no deadline fires.
    ([PartitionProgress(None, None, None, 0, 9, 3.0)], None),
    # The slowest partition holds the watermark back.
    ([PartitionProgress(at(10), 5, 5, 5, 5, 3.0), PartitionProgress(at(7), 2, 2, 2, 9, 0.0)], at(7)),
])
def test_the_watermark_is_the_wall_clock_only_where_everything_was_read(progress, expected):
    assert ingest_watermark(progress, at(100)) == expected


def test_a_replay_of_history_reads_now_from_its_records_not_the_wall_clock():
    """watermark_clock = "records": a partition read to its end counts as the newest record
    time processed anywhere, so a replay of last month does not fire every deadline at once
    when the replay pauses; a partition still behind holds the watermark back as always."""
    from models.watermark import newest_record

    idle = PartitionProgress(at(10), 5, 5, 5, 5, 3.0)
    behind = PartitionProgress(at(7), 2, 2, 2, 9, 0.0)
    never_used = PartitionProgress(None, None, None, 0, 0, 3.0)
    assert ingest_watermark([idle, never_used], newest_record([idle, never_used])) == at(10)
    assert ingest_watermark([idle, behind], newest_record([idle, behind])) == at(7)
    assert newest_record([never_used]) is None


def test_an_order_whose_stored_state_cannot_be_read_back_after_a_bug_fails_alone(monkeypatch):
    """A bug on one event sends the order back to its stored state; if that state no longer
    decodes, the order's events all fail (to the DLQ) instead of the whole batch ending the
    worker, and nothing of that order is stored."""
    import models.order as order

    original = order._on_scan

    def broken(state, event, effects, rules):
        if event.raw_code == "poison":
            raise KeyError("a bug")
        return original(state, event, effects, rules)

    def reload(order_id):
        raise ValueError(f"{order_id}: stored state does not decode")

    monkeypatch.setattr(order, "_on_scan", broken)
    events = [placed(), shipped(), scan(S.in_transit, 250, raw_code="poison"), scan(S.delivered, 30 * HOUR),
              placed("ORD-2")]
    outcome = apply_batch({}, events, reload=reload)
    assert sorted((i, type(e).__name__) for i, e in outcome.failed) == [
        (0, "ValueError"), (1, "ValueError"), (2, "KeyError"), (3, "ValueError")]
    assert "ORD-1" not in outcome.changed and all(e.order_id != "ORD-1" for e in outcome.effects)
    assert "ORD-2" in outcome.changed
