"""Scale-out: three worker processes send what one would, and answer every order lookup alike,
whichever owns the order."""

from __future__ import annotations

import pytest

from tests.integration.conftest import SUPPORT_TOKEN, produce
from tests.oracle import expected_notifications
from trackline.simulator import TrafficMix, TrafficSimulator

pytestmark = pytest.mark.integration
STEADY = TrafficMix(trouble=0, preferences=0, late_feed=0, unannounced=0, old_burst_journeys=0,
                    malformed=0, type_confused=0)
WORKERS = ("worker", "worker-2", "worker-3")


def test_three_workers_each_answer_for_every_order(pipeline):
    traffic = list(TrafficSimulator(seed=31, mix=STEADY).stream(orders_per_second=5, duration=6))
    orders = sorted({m.key.decode() for m in traffic if m.topic.endswith("fc-events")})
    expected = expected_notifications(traffic)
    pipeline.env["TRACKLINE_OWN_ESTIMATE"] = "false"  # compared with a one-process oracle: no learned model
    pipeline.start(*WORKERS, "notifier")
    logs = [pipeline.logs / f"{name}.log" for name in WORKERS]
    # Each of the three holds partitions (3 partitions, 3 workers: one each once settled).
    pipeline.wait_for(lambda: all("Seek stream partitions" in log.read_text() for log in logs), 120,
                      "every worker to take partitions")
    produce(pipeline.bootstrap, [(m.topic, m.key, m.value, m.headers) for m in traffic])
    pipeline.wait_for(lambda: len(pipeline.delivered()) >= len(expected), 180, "every command")
    # Three workers tell customers what one would: the pure core's answer, each once.
    delivered = [c["command_id"] for c in pipeline.delivered()]
    assert sorted(delivered) == sorted(expected)

    def answers(order_id: str) -> list[tuple[int, dict]]:
        return [pipeline.get(f"/api/orders/{order_id}", SUPPORT_TOKEN, pipeline.web_ports[name]) for name in WORKERS]

    # The group may still settle after the traffic: wait until every worker answers the first order.
    pipeline.wait_for(lambda: all(status == 200 for status, _ in answers(orders[0])), 60,
                      "every worker to answer a lookup")
    for order_id in orders:
        found = answers(order_id)
        assert [status for status, _ in found] == [200, 200, 200], (order_id, found)
        assert found[0][1]["order_id"] == order_id
        assert found[1:] == [found[0], found[0]], f"workers disagree on {order_id}"
    unknown = pipeline.get("/api/orders/ORD-NOBODY", SUPPORT_TOKEN, pipeline.web_ports["worker-3"])
    assert unknown[0] == 404, unknown
