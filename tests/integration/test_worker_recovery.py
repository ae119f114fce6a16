"""A worker killed mid-stream and restarted: customers get every update, none twice."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from tests.integration.conftest import SENTINEL, SUPPORT_TOKEN, produce, settle
from tests.oracle import expected_notifications
from trackline.simulator import TrafficMix, TrafficSimulator

pytestmark = pytest.mark.integration
# No troubled journeys (their deadlines depend on the wall clock) and no preferences (they
# remove commands): the oracle compares the commands the order rules emit.
# Nor late feeds, old bursts or unannounced labels: their outcome depends on the watermark.
STEADY = TrafficMix(trouble=0, preferences=0, late_feed=0, unannounced=0, old_burst_journeys=0)


def test_kill_9_and_restart_loses_and_repeats_nothing(pipeline):
    traffic = list(TrafficSimulator(seed=11, mix=STEADY).stream(orders_per_second=10, duration=25))
    expected = expected_notifications(traffic)
    pipeline.env["TRACKLINE_OWN_ESTIMATE"] = "false"  # compared with a one-process oracle: no learned model
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


def test_a_batch_that_fails_outside_any_record_is_replayed_not_skipped(pipeline):
    """A store error or a bug between records: Faust would acknowledge the batch it was in."""
    from streams.batch_io import EXIT_BATCH_FAILED

    traffic = list(TrafficSimulator(seed=13, mix=STEADY).stream(orders_per_second=10, duration=10))
    expected = expected_notifications(traffic)
    pipeline.env["TRACKLINE_OWN_ESTIMATE"] = "false"  # compared with a one-process oracle: no learned model
    pipeline.env["TRACKLINE_FAILPOINTS"] = "batch_error:1"  # the first batch any agent processes
    pipeline.start("worker", "notifier")
    produce(pipeline.bootstrap, [(m.topic, m.key, m.value, m.headers) for m in traffic])
    assert pipeline.processes["worker"].wait(120) == EXIT_BATCH_FAILED
    assert "without acknowledging it" in (pipeline.logs / "worker.log").read_text()
    del pipeline.env["TRACKLINE_FAILPOINTS"]
    pipeline.start("worker")  # as a supervisor would
    pipeline.wait_for(lambda: len(pipeline.delivered()) >= len(expected), 180, "every command")
    settle(pipeline, "after the replay")  # anything produced twice would have arrived by now

    delivered = Counter(c["command_id"] for c in pipeline.delivered())
    assert set(delivered) == set(expected)
    assert [i for i, n in delivered.items() if n > 1] == []


def commands_on_topic(bootstrap: str) -> Counter:
    """Every command id the workers produced, duplicates included."""
    from broker import clients
    from models import topics
    from tests.integration.conftest import PARTITIONS

    ids = Counter(command["command_id"] for command in clients.read_topic(bootstrap, topics.NOTIFICATIONS, PARTITIONS)
                  if not command["order_id"].startswith(SENTINEL))
    return ids


def test_partitions_moving_between_workers_and_back_keep_state_exact(pipeline):
    traffic = list(TrafficSimulator(seed=12, mix=STEADY).stream(orders_per_second=10, duration=30))
    half = len(traffic) // 2
    first, second = traffic[:half], traffic[half:]
    as_messages = [(m.topic, m.key, m.value, m.headers) for m in traffic]
    expected = expected_notifications(traffic)
    pipeline.env["TRACKLINE_OWN_ESTIMATE"] = "false"  # compared with a one-process oracle: no learned model

    pipeline.start("worker", "notifier")
    produce(pipeline.bootstrap, as_messages[:half])
    pipeline.wait_for(lambda: len(pipeline.delivered()) >= len(expected_notifications(first)), 120, "first half")
    pipeline.start("worker-2")  # the group rebalances: some partitions move to worker-2
    log = pipeline.logs / "worker-2.log"
    pipeline.wait_for(lambda: "Seek stream partitions" in log.read_text(), 60, "worker-2 to take partitions")
    produce(pipeline.bootstrap, as_messages[half:])
    pipeline.wait_for(lambda: len(pipeline.delivered()) >= len(expected), 180, "every command")
    first_log = pipeline.logs / "worker.log"
    assignments = first_log.read_text().count("Seek stream partitions")
    pipeline.stop("worker-2")  # its partitions come back to the first worker
    pipeline.wait_for(lambda: first_log.read_text().count("Seek stream partitions") > assignments, 90,
                      "the first worker to take worker-2's partitions back")
    settle(pipeline, "moved-back")
    before = commands_on_topic(pipeline.bootstrap)
    # Carriers resend the second half; the first worker must know worker-2 applied it.
    produce(pipeline.bootstrap, [(m.topic, m.key, m.value, m.headers) for m in second if m.kind == "scan"])
    settle(pipeline, "resent")  # every resent scan went through every hop before the check below

    delivered = Counter(c["command_id"] for c in pipeline.delivered())
    assert set(delivered) == set(expected)
    assert [i for i, n in delivered.items() if n > 1] == [], "a customer was told twice"
    produced = commands_on_topic(pipeline.bootstrap)
    assert set(produced) == set(expected)
    # At-least-once: a rebalance may produce a batch's commands again (the notifier drops them
    # by id), but the resent scans were already applied by worker-2 and produce nothing.
    assert produced - before == Counter(), "the resent scans produced commands again after the move"


def test_a_deadline_survives_a_worker_crash(pipeline, tmp_path):
    """The deadline index lives in memory; after kill -9 it is rebuilt from the orders table."""
    from datetime import UTC, datetime, timedelta

    from models import topics

    # The customer hears 1 s after ops (the feed-latency allowance), not 30 minutes.
    rules = tmp_path / "thresholds.toml"
    rules.write_text("feed_allowance_start_minutes = 0.0167\nfeed_allowance_floor_minutes = 0.0167\n")
    pipeline.env.update(TRACKLINE_TICK_INTERVAL="0.5", TRACKLINE_THRESHOLDS=str(rules))
    pipeline.start("worker", "notifier")
    now = datetime.now(UTC)
    placed = {"type": "order_placed", "event_id": "ORD-T-placed", "order_id": "ORD-T", "occurred_at": now.isoformat(),
              "customer_id": "CUST-T", "seller_id": "SELLER-1", "fulfillment_center": "FC-A",
              "service_level": "standard", "promised_delivery_date": (now + timedelta(days=5)).date().isoformat(),
              "ship_by": (now + timedelta(seconds=15)).isoformat(), "items": [{"sku": "SKU-1", "quantity": 1}]}
    produce(pipeline.bootstrap, [(topics.FC_EVENTS, b"ORD-T", orjson.dumps(placed), [])])
    pipeline.wait_for(lambda: any(c["type"] == "estimate_set" for c in pipeline.delivered()), 60, "the order")
    pipeline.kill("worker")  # before ship-by: the deadline exists only in the stored state now
    pipeline.start("worker")
    pipeline.wait_for(lambda: any(c["type"] == "delayed" for c in pipeline.delivered()), 90,
                      "the warehouse delay after the restart")
    (delay,) = [c for c in pipeline.delivered() if c["type"] == "delayed"]
    fired = datetime.fromisoformat(delay["caused_by_ingested_at"].replace("Z", "+00:00"))
    assert fired >= now + timedelta(seconds=15)  # not before ship-by
    assert fired <= now + timedelta(seconds=15 + 60)  # within a minute of it, restart included


def test_a_fresh_node_restores_every_order_in_bulk_and_carries_on_exactly(pipeline):
    """The worker's disk is lost: a new worker restores orders, tracking links and preferences
    from the changelogs (streams/restore.py, not Faust's event-at-a-time recovery) and
    continues as if nothing happened: same lookups, resent scans produce nothing again."""
    from models import topics

    traffic = list(TrafficSimulator(seed=14, mix=STEADY).stream(orders_per_second=10, duration=20))
    half = len(traffic) // 2
    first, second = traffic[:half], traffic[half:]
    expected = expected_notifications(traffic)
    pipeline.env["TRACKLINE_OWN_ESTIMATE"] = "false"  # compared with a one-process oracle: no learned model

    pipeline.start("worker", "notifier")
    produce(pipeline.bootstrap, [(m.topic, m.key, m.value, m.headers) for m in first])
    pipeline.wait_for(lambda: len(pipeline.delivered()) >= len(expected_notifications(first)), 120, "first half")
    settle(pipeline, "before")
    orders = sorted({m.key.decode() for m in first if m.topic == topics.FC_EVENTS})[:20]
    before = {order_id: pipeline.lookup(order_id) for order_id in orders}
    assert all(status == 200 for status, _ in before.values())
    pipeline.stop("worker")

    pipeline.start("worker-2")  # its own, empty data directory
    log = pipeline.logs / "worker-2.log"
    pipeline.wait_for(lambda: "bulk restore of trackline-orders-changelog" in log.read_text(), 90,
                      "the new worker's bulk restore")
    settle(pipeline, "restored")
    port = pipeline.web_ports["worker-2"]
    after = {order_id: pipeline.get(f"/api/orders/{order_id}", SUPPORT_TOKEN, port=port) for order_id in orders}
    assert after == before
    produced = commands_on_topic(pipeline.bootstrap)
    # Carriers resend the first half's scans, then the traffic goes on.
    produce(pipeline.bootstrap, [(m.topic, m.key, m.value, m.headers) for m in first if m.kind == "scan"])
    settle(pipeline, "resent")
    assert commands_on_topic(pipeline.bootstrap) - produced == Counter(), "restored orders took old scans as new"
    produce(pipeline.bootstrap, [(m.topic, m.key, m.value, m.headers) for m in second])
    pipeline.wait_for(lambda: len(pipeline.delivered()) >= len(expected), 180, "every command")
    settle(pipeline, "after")

    delivered = Counter(c["command_id"] for c in pipeline.delivered())
    assert set(delivered) == set(expected)
    assert [i for i, n in delivered.items() if n > 1] == [], "a customer was told twice"


def test_an_order_whose_stored_state_is_corrupt_waits_in_the_dead_letters_and_the_rest_go_on(pipeline):
    """A stored state that no longer decodes (a damaged changelog, a bug) used to end the
    worker at every batch that touched the order: a crash loop. Now that order's events wait
    in the DLQ, its lookup says so, and every other order carries on."""
    from datetime import UTC, datetime, timedelta

    from confluent_kafka import Consumer, Producer, TopicPartition

    from models import topics
    from tests.integration.conftest import PARTITIONS
    from tests.integration.test_retention import dead_letter_reasons

    now = datetime.now(UTC)

    def placed(order_id: str) -> bytes:
        return orjson.dumps({
            "type": "order_placed", "event_id": f"{order_id}-placed", "order_id": order_id,
            "occurred_at": now.isoformat(), "customer_id": f"C-{order_id}", "seller_id": "S",
            "fulfillment_center": "FC-A", "service_level": "standard",
            "promised_delivery_date": (now + timedelta(days=5)).date().isoformat(),
            "ship_by": (now + timedelta(days=1)).isoformat(), "items": [{"sku": "SKU-1", "quantity": 1}]})

    def shipped(order_id: str) -> bytes:
        return orjson.dumps({"type": "package_shipped", "event_id": f"{order_id}-shipped", "order_id": order_id,
                             "occurred_at": (now + timedelta(minutes=1)).isoformat(), "package_id": f"{order_id}-P1",
                             "carrier": "UPS", "tracking_number": f"1Z{order_id[-4:]}"})

    def lookup(order_id: str, worker: str) -> int:
        """The lookup's status; 0 while the worker's web server is not up yet."""
        import urllib.error
        try:
            return pipeline.get(f"/api/orders/{order_id}", SUPPORT_TOKEN, port=pipeline.web_ports[worker])[0]
        except urllib.error.URLError:
            return 0

    damaged, healthy = "ORD-DAMAGED-1", "ORD-HEALTHY-1"
    pipeline.start("worker")
    produce(pipeline.bootstrap, [(topics.FC_EVENTS, o.encode(), placed(o), []) for o in (damaged, healthy)])
    pipeline.wait_for(lambda: all(lookup(o, "worker") == 200 for o in (damaged, healthy)), 60, "both orders")
    pipeline.stop("worker")

    # Damage the damaged order's latest value in the changelog, in the partition that holds it.
    changelog = "trackline-orders-changelog"
    consumer = Consumer({"bootstrap.servers": pipeline.bootstrap, "group.id": "test-read-changelog"})
    consumer.assign([TopicPartition(changelog, p, 0) for p in range(PARTITIONS)])
    partitions = {m.key(): m.partition() for m in consumer.consume(1000, timeout=2.0) if not m.error()}
    consumer.close()
    producer = Producer({"bootstrap.servers": pipeline.bootstrap})
    producer.produce(changelog, key=damaged.encode(), value=b'0|2|{"order_id": 17, "truncat',
                     partition=partitions[damaged.encode()])
    assert producer.flush(10) == 0

    pipeline.start("worker-2")  # a fresh disk: restores every order from the changelog, the damaged one too
    port = pipeline.web_ports["worker-2"]
    pipeline.wait_for(lambda: lookup(healthy, "worker-2") == 200, 90, "the new worker's restore")
    produce(pipeline.bootstrap, [(topics.FC_EVENTS, o.encode(), shipped(o), []) for o in (damaged, healthy)])
    pipeline.wait_for(lambda: any(r == "unreadable_order_state" for r, _ in dead_letter_reasons(pipeline.bootstrap)),
                      60, "the damaged order's event in the DLQ")
    (refused,) = [value for r, value in dead_letter_reasons(pipeline.bootstrap) if r == "unreadable_order_state"]
    assert orjson.loads(refused)["event_id"] == f"{damaged}-shipped"
    pipeline.wait_for(lambda: pipeline.get(f"/api/orders/{healthy}", SUPPORT_TOKEN, port=port)[1].get("status")
                      == "shipped", 60, "the healthy order's shipment")
    status, body = pipeline.get(f"/api/orders/{damaged}", SUPPORT_TOKEN, port=port)
    assert status == 500 and "unreadable" in body["error"], body
    assert pipeline.processes["worker-2"].poll() is None, "the worker ended"
