"""The deadline index hands out due orders only, once each, earliest first.

Everything here goes through the public API (schedule, due, acknowledge, pop_due, next_due,
len), as the timer uses it: what a user of the index would notice, never how it stores them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from models.deadlines import DeadlineIndex, epoch_seconds


def test_only_due_orders_come_out_earliest_first():
    index = DeadlineIndex()
    for order_id, due in [("late", 300), ("early", 100), ("middle", 200), ("later", 400)]:
        index.schedule(order_id, due)
    assert index.next_due() == 100
    assert index.due(99) == [] and index.pop_due(99) == []
    assert index.due(250) == [("early", 100), ("middle", 200)]
    assert index.pop_due(199) == [("early", 100)]
    assert index.next_due() == 200 and len(index) == 3
    assert index.pop_due(1000) == [("middle", 200), ("late", 300), ("later", 400)]
    assert index.pop_due(10_000) == [] and index.due(10_000) == []
    assert len(index) == 0 and index.next_due() is None


def test_a_limit_leaves_the_rest_for_the_next_round_and_pop_due_takes_the_earliest():
    index = DeadlineIndex()
    for n in range(10):
        index.schedule(f"O{n}", 100 + (7 * n) % 10)  # 100, 107, 104, 101, ... in a scrambled order
    first = index.due(1000, limit=3)
    assert len(first) == 3
    index.acknowledge(first)
    rest = index.due(1000)
    assert sorted(first + rest, key=lambda item: item[1]) == sorted(
        [(f"O{n}", 100 + (7 * n) % 10) for n in range(10)], key=lambda item: item[1])
    assert [due for _, due in rest] == sorted(due for _, due in rest)
    assert not {order for order, _ in first} & {order for order, _ in rest}
    assert index.pop_due(1000, limit=2) == rest[:2] and len(index) == 5


def test_a_rescheduled_order_comes_out_at_its_new_time_only():
    index = DeadlineIndex()
    index.schedule("A", 100)
    index.schedule("B", 300)
    index.schedule("A", 500)  # a new scan pushed the stale deadline out
    assert index.next_due() == 300
    assert index.due(400) == [("B", 300)]
    assert index.pop_due(400) == [("B", 300)]
    index.schedule("C", 200)
    index.schedule("C", 50)  # and one brought forward
    assert index.pop_due(100) == [("C", 50)]
    assert len(index) == 1 and index.next_due() == 500
    assert index.pop_due(10_000) == [("A", 500)]
    assert index.pop_due(10**9) == [] and index.next_due() is None


def test_a_dropped_order_never_comes_out():
    index = DeadlineIndex()
    index.schedule("kept", 100)
    index.schedule("dropped", 50)
    index.schedule("dropped", None)  # delivered and asked for feedback: nothing left
    index.schedule("never-scheduled", None)
    assert len(index) == 1 and index.next_due() == 100
    assert index.due(10_000) == [("kept", 100)]
    assert index.pop_due(10_000) == [("kept", 100)]
    index.schedule("dropped", None)
    assert index.due(10**9) == [] and index.pop_due(10**9) == [] and len(index) == 0


def test_many_reschedules_leave_one_entry_per_order_and_a_tick_sees_each_once():
    """A tick's cost must not grow with garbage: after 100,000 reschedules of 100 orders the
    index holds 100 entries, and one round hands out each order once, at its last time."""
    index = DeadlineIndex()
    for step in range(100_000):
        index.schedule(f"O{step % 100}", step)
    assert len(index) == 100
    assert index.next_due() == 99_900
    assert index.due(99_899) == []
    due = index.due(10**9)
    assert due == [(f"O{n}", 99_900 + n) for n in range(100)]
    index.acknowledge(due)
    assert len(index) == 0 and index.next_due() is None and index.due(10**9) == []
    # The same with pop_due, and with reschedules that move deadlines earlier as well as later.
    for step in range(100_000):
        index.schedule(f"O{step % 100}", 200_000 - step if step % 2 else step)
    expected = {f"O{n}": (200_000 - (99_900 + n) if n % 2 else 99_900 + n) for n in range(100)}
    assert len(index) == 100
    assert index.due(10**9) == sorted(expected.items(), key=lambda item: item[1])
    popped = index.pop_due(10**9)
    assert dict(popped) == expected and len(popped) == 100
    assert [due for _, due in popped] == sorted(expected.values())


def test_deadlines_round_up_so_a_tick_is_never_early():
    due = datetime(2026, 11, 27, 3, 0, 9, 960000, tzinfo=UTC)
    assert epoch_seconds(due) >= due.timestamp()
    assert epoch_seconds(due) == int(datetime(2026, 11, 27, 3, 0, 10, tzinfo=UTC).timestamp())
    exact = datetime(2026, 11, 27, 3, 0, 10, tzinfo=UTC)
    assert epoch_seconds(exact) == int(exact.timestamp())


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


def test_an_order_scheduled_again_at_the_same_time_after_its_tick_comes_out_once():
    # A tick that did not move the deadline (the state still says the same time) schedules it
    # again: two ticks for one order in one round would reach an order the first removed.
    index = DeadlineIndex()
    index.schedule("again", 100)
    index.acknowledge(index.due(200))
    index.schedule("again", 100)
    index.schedule("other", 150)
    assert index.due(200) == [("again", 100), ("other", 150)]
    assert index.pop_due(200) == [("again", 100), ("other", 150)]
