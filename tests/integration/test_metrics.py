"""What Prometheus sees: every trackline process's ``/metrics``, scraped over HTTP while real
traffic (the carriers' documented payloads through the ingest service) goes through the
embedded (memory-only) broker, parsed with the Prometheus client's own parser. The alert
rules and the Prometheus dashboard may only name metrics a process really exposes."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import yaml
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from broker import clients
from broker.embedded import free_port
from models import topics
from sinks.clickhouse import GROUP as SINK_GROUP
from tests.integration.conftest import Pipeline, settle, sink_caught_up
from tests.integration.test_ingest import DOCUMENTED, configure, order_placed, send, signed
from trackline.metrics import LagProbe

ROOT = Path(__file__).parents[2]


def scrape(port: int) -> dict[str, list]:
    """Sample name -> [(labels, value)], as Prometheus would read the page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: dict[str, list], name: str, **labels: str) -> float:
    return sum(v for found, v in samples.get(name, []) if all(found.get(k) == w for k, w in labels.items()))


def test_every_process_exposes_what_ops_alert_on(pipeline: Pipeline) -> None:
    ports = {name: free_port() for name in ("sink", "notifier", "ingest")}
    for name, port in ports.items():
        pipeline.extra_args[name] = ["--metrics-port", str(port)]
    configure(pipeline).start("worker", "sink", "notifier", "ingest")
    pipeline.ingest_ready()

    for source, body in DOCUMENTED.items():
        assert send(pipeline, source, body)[0] == 202, source
    placed = orjson.dumps(order_placed("ORD-METRICS-1", datetime.now(UTC) - timedelta(minutes=5)))
    assert send(pipeline, "fc", placed)[0] == 202
    # Signed correctly but not JSON: accepted by ingest, dead-lettered by the router.
    assert send(pipeline, "generic", b'{"tracking_number": "1ZMETRICS", "events": [')[0] == 202
    path, headers = signed("easypost", DOCUMENTED["easypost"])
    headers = {k: v[:-4] + "0000" if "signature" in k.lower() else v for k, v in headers.items()}
    assert pipeline.post(path, DOCUMENTED["easypost"], headers)[0] == 401
    settle(pipeline, "metrics")
    sink_caught_up(pipeline)

    def lag_reported(port: int, group: str) -> bool:
        return any(labels.get("group") == group for labels, _ in scrape(port).get("trackline_consumer_lag_seconds", []))

    # The lag probes run every 15 s; the first ones may find no group yet.
    pipeline.wait_for(lambda: lag_reported(pipeline.web_port, "trackline") and lag_reported(ports["sink"], SINK_GROUP)
                      and lag_reported(ports["notifier"], "trackline-notifier"), 90, "every group's lag reported")

    worker = scrape(pipeline.web_port)
    for source in ("easypost", "aftership", "shippo", "generic", "x12-214"):
        assert value(worker, "trackline_events_in_total", topic=topics.CARRIER_SCANS_RAW, source=source) >= 1, source
    assert value(worker, "trackline_events_in_total", topic=topics.FC_EVENTS) >= 1
    assert value(worker, "trackline_dead_letters_total", reason="malformed_json",
                 topic=topics.CARRIER_SCANS_RAW) == 1
    assert value(worker, "trackline_batch_seconds_count", stage="scan router") >= 1
    assert value(worker, "trackline_batch_seconds_count", stage="order tracker") >= 1
    # The order placed five minutes ago waits for its ship-by: one deadline at least.
    assert value(worker, "trackline_deadline_index_size", index="deadline") >= 1
    partitions = {(labels["topic"], labels["partition"]) for labels, _ in worker["trackline_consumer_lag_records"]
                  if labels["group"] == "trackline"}
    assert (topics.CARRIER_SCANS_RAW, "0") in partitions and (topics.FC_EVENTS, "0") in partitions
    assert "process_cpu_seconds_total" in worker  # the client's process collector: liveness and restarts

    sink = scrape(ports["sink"])
    assert value(sink, "trackline_sink_rows_total", table="history") >= 10
    assert value(sink, "trackline_sink_rows_total", table="dead_letters") >= 1
    assert value(sink, "trackline_sink_history_lag_seconds_count") >= 1
    assert time.time() - value(sink, "trackline_sink_last_write_timestamp_seconds") < 120
    assert value(sink, "trackline_events_in_total", topic=topics.HISTORY) >= 1

    notifier = scrape(ports["notifier"])
    # No channel is configured in this run: every command goes to the JSON-lines file.
    assert value(notifier, "trackline_notifier_outcomes_total", outcome="sent") >= 1
    assert value(notifier, "trackline_events_in_total", topic=topics.NOTIFICATIONS) >= 1

    ingest = scrape(ports["ingest"])
    assert value(ingest, "trackline_ingest_requests_total", source="easypost", status="202") == 1
    assert value(ingest, "trackline_ingest_requests_total", source="easypost", status="401") == 1
    assert value(ingest, "trackline_ingest_requests_total", source="generic", status="202") == 2
    assert value(ingest, "trackline_events_in_total", topic=topics.FC_EVENTS, source="fc") == 1

    # Every metric the alert rules and the Prometheus dashboard query is one a process exposes.
    exposed = set(worker) | set(sink) | set(notifier) | set(ingest)
    for expression in rule_and_panel_expressions():
        for name in re.findall(r"\btrackline_[a-z_]+\b", expression):
            assert name in exposed, f"{name} (in {expression!r}) is exposed by no process"


def rule_and_panel_expressions() -> list[str]:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    dashboard = json.loads((ROOT / "dashboards" / "prometheus" / "trackline-liveness.json").read_text())
    return ([rule["expr"] for group in rules["groups"] for rule in group["rules"]]
            + [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]])


def test_lag_is_counted_in_records_and_in_the_age_of_the_oldest_unread_one(broker: str) -> None:
    from confluent_kafka import TopicPartition

    producer = clients.producer(broker)
    for n in range(4):  # one batch each: the embedded broker's high watermark counts batches' first offsets
        producer.produce(topics.ALERTS, key=b"ORD-LAG", value=b"%d" % n, partition=1)
        assert producer.flush(10) == 0
    reader = clients.consumer(broker, "test-lagging-group")
    reader.assign([TopicPartition(topics.ALERTS, 1, 0)])
    read = [m for m in reader.consume(1, timeout=10) if not m.error()]
    assert len(read) == 1
    reader.commit(offsets=[TopicPartition(topics.ALERTS, 1, 1)], asynchronous=False)
    reader.close()
    time.sleep(2.0)

    probe = LagProbe(broker, ["test-lagging-group"])
    probe_reader = clients.consumer(broker, "trackline-lag-probe-test")
    try:
        probe.probe(probe_reader, "test-lagging-group")
    finally:
        probe_reader.close()
    labels = {"group": "test-lagging-group", "topic": topics.ALERTS, "partition": "1"}
    assert REGISTRY.get_sample_value("trackline_consumer_lag_records", labels) == 3
    age = REGISTRY.get_sample_value("trackline_consumer_lag_seconds", labels)
    assert age is not None
    assert 2.0 <= age < 60, age
