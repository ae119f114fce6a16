"""The deadline index hands out due orders only, once each, earliest first."""

from __future__ import annotations

from models.deadlines import DeadlineIndex


def test_only_due_orders_come_out_earliest_first():
    index = DeadlineIndex()
    for order_id, due in [("late", 300), ("early", 100), ("middle", 200)]:
        index.schedule(order_id, due)
    assert index.pop_due(199) == [("early", 100)]
    assert index.pop_due(1000) == [("middle", 200), ("late", 300)]
    assert index.pop_due(10_000) == [] and len(index) == 0


def test_rescheduling_replaces_the_old_deadline():
    index = DeadlineIndex()
    index.schedule("A", 100)
    index.schedule("A", 500)  # a new scan pushed the stale deadline out
    assert index.pop_due(400) == []
    assert index.next_due() == 500
    index.schedule("A", None)  # delivered and asked for feedback: nothing left
    assert index.pop_due(10_000) == []


def test_many_reschedules_keep_the_heap_bounded():
    index = DeadlineIndex()
    for step in range(50_000):
        index.schedule(f"O{step % 100}", step)
    assert len(index) == 100
    assert len(index._heap) <= 2 * 100 + 1024 + 1
    assert [due for _, due in index.pop_due(10**9)] == list(range(49_900, 50_000))


def test_deadlines_round_up_so_a_tick_is_never_early():
    from datetime import UTC, datetime

    from models.deadlines import epoch_seconds
    due = datetime(2026, 11, 27, 3, 0, 9, 960000, tzinfo=UTC)
    assert epoch_seconds(due) >= due.timestamp()


def test_a_deadline_stays_until_its_tick_is_acknowledged_and_a_moved_one_survives():
    index = DeadlineIndex()
    index.schedule("sent", 100)
    index.schedule("moved", 150)
    due = index.due(200)
    assert due == [("sent", 100), ("moved", 150)]
    assert index.due(200) == due  # the send failed: the next round finds them again
    index.schedule("moved", 500)  # its order changed meanwhile
    index.acknowledge(due)
    assert index.due(10_000) == [("moved", 500)]
    assert len(index) == 1
