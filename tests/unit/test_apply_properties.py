"""Properties of the order rules under redelivery and reordering (hypothesis).

At-least-once delivery repeats events and carriers resend whole histories; webhooks arrive
out of order. Whatever the repeats or the order, the customer must hear the same things and
the package must end in the same place.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from models.codec import replace
from models.effects import NotificationCommand
from models.events import PackageStatus
from tests.conftest import placed, run, scan, shipped

S = PackageStatus
HOUR = 60
JOURNEY = [placed(), shipped(), scan(S.picked_up, 120), scan(S.in_transit, 300), scan(S.in_transit, 20 * HOUR),
           scan(S.out_for_delivery, 30 * HOUR), scan(S.attempt_failed, 31 * HOUR),
           scan(S.out_for_delivery, 50 * HOUR), scan(S.delivered, 52 * HOUR)]
SCANS = JOURNEY[2:]
EXAMPLES = settings(max_examples=150, deadline=None)


def command_ids(effects) -> set[str]:
    return {c.command_id for c in effects if isinstance(c, NotificationCommand)}


def comparable(state):
    """The state without what only records arrival (the ids seen, in the order they came)."""
    return replace(state, seen_event_ids=[])


BASELINE_STATE, BASELINE_EFFECTS = run(JOURNEY)


@EXAMPLES
@given(st.lists(st.integers(min_value=0, max_value=len(JOURNEY) - 1), max_size=12))
def test_duplicated_events_change_nothing(repeats):
    events = list(JOURNEY)
    for offset, index in enumerate(repeats):  # each repeat right after some later point
        events.insert(min(len(events), index + 1 + offset), JOURNEY[index])
    state, effects = run(events)
    assert comparable(state) == comparable(BASELINE_STATE)
    assert command_ids(effects) == command_ids(BASELINE_EFFECTS)


def test_replaying_a_whole_journey_adds_nothing():
    state, effects = run(JOURNEY, BASELINE_STATE)
    assert effects == []
    assert comparable(state) == comparable(BASELINE_STATE)


@EXAMPLES
@given(st.permutations(SCANS))
def test_scans_in_any_order_end_in_the_same_status_and_timeline(order):
    state, effects = run([placed(), shipped(), *order])
    package, expected = state.packages["P1"], BASELINE_STATE.packages["P1"]
    assert package.status is S.delivered and package.status == expected.status
    assert package.timeline == expected.timeline
    assert package.delivered_at == expected.delivered_at
    assert "delivered" in {c.type.value for c in effects if isinstance(c, NotificationCommand)}
