"""A worker killed mid-stream and restarted: customers get every update, none twice."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.integration.conftest import produce
from tests.oracle import expected_notifications
from trackline.simulator import TrafficSimulator

pytestmark = pytest.mark.integration


def test_kill_9_and_restart_loses_and_repeats_nothing(pipeline):
    traffic = list(TrafficSimulator(seed=11).stream(orders_per_second=10, duration=25))
    expected = expected_notifications(traffic)
    assert len(expected) > 500

    pipeline.start("worker", "notifier")
    produce(pipeline.bootstrap, [(m.topic, m.key, m.value, m.headers) for m in traffic])
    pipeline.wait_for(lambda: len(pipeline.delivered()) >= len(expected) // 4, 120, "a quarter of the commands")
    pipeline.kill("worker")  # no shutdown, no final commit
    pipeline.start("worker")
    pipeline.wait_for(lambda: len(pipeline.delivered()) >= len(expected), 180, "every command")

    delivered = pipeline.delivered()
    assert Counter(c["command_id"] for c in delivered).most_common(1)[0][1] == 1, "a customer was told twice"
    assert {c["command_id"] for c in delivered} == set(expected)
    by_type = Counter(c["type"] for c in delivered)
    assert by_type == Counter(command.type.value for command in expected.values())
