"""Every panel of every dashboard shows data on simulated traffic: through the ops page's
API (the panel SQL with the plugin's macros expanded, on the real engine) and in headless
Chromium (the page as a person sees it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from broker import clients
from broker.embedded import free_port
from tests.integration.conftest import Pipeline
from trackline import simulator

pytestmark = pytest.mark.integration

DASHBOARDS = {d["uid"]: d for d in (json.loads(p.read_text())
                                    for p in sorted((Path(__file__).parents[2] / "dashboards").glob("*.json")))}
DEMO_THRESHOLDS = Path(__file__).parents[2] / "config" / "detection-demo.toml"


def get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as response:
        return json.loads(response.read())


def panel_result(port: int, uid: str, panel_id: int) -> dict:
    """The panel's rows, or the error the ops page answered with (a query the engine refused)."""
    try:
        return get(port, f"/api/panel/{uid}/{panel_id}")
    except urllib.error.HTTPError as error:
        return {"error": f"HTTP {error.code}: {error.read()[:500]!r}", "rows": [], "columns": []}


def panel_results(port: int) -> dict[tuple[str, str], dict]:
    return {(uid, panel["title"]): panel_result(port, uid, panel["id"])
            for uid, dashboard in DASHBOARDS.items() for panel in dashboard["panels"]}


# Sentinel orders, one per partition, placed after the traffic with a ship-by later than every
# deadline the traffic sets (presumed lost 30 s after a package's last scan, unmatched scans
# 30 s, feedback 20 s after delivery, plus the 3 s feed allowance). Each partition's timer
# ticks deadlines earliest first, so a sentinel's warehouse-delay alert in the history topic
# shows that its partition's traffic deadlines were ticked and their history produced.
SENTINEL_AFTER_SECONDS = 40


def sentinel_orders() -> dict[int, str]:
    from tests.integration.conftest import PARTITIONS, _keys_for_each_partition

    return dict(enumerate(_keys_for_each_partition("ORD-SENTINEL-", PARTITIONS)))


def place_sentinels(bootstrap: str, orders: dict[int, str]) -> None:
    from datetime import UTC, datetime, timedelta

    from models import topics
    from tests.integration.conftest import produce

    now = datetime.now(UTC)
    produce(bootstrap, [(topics.FC_EVENTS, order_id.encode(), json.dumps({
        "type": "order_placed", "event_id": f"{order_id}-placed", "order_id": order_id,
        "occurred_at": now.isoformat(), "customer_id": "CUST-SENTINEL", "seller_id": "SELLER-SENTINEL",
        "fulfillment_center": "FC-SENTINEL", "service_level": "standard",
        "promised_delivery_date": (now + timedelta(days=5)).date().isoformat(),
        "ship_by": (now + timedelta(seconds=SENTINEL_AFTER_SECONDS)).isoformat(),
        "delivery_time_zone": "UTC", "items": [{"sku": "SKU-SENTINEL", "quantity": 1}]}).encode(), [])
        for order_id in orders.values()])


class Watcher:
    """Reads the history, dead-letter and notification topics from the start, as any consumer
    would: which sentinels' alerts arrived, and how far each partition was read."""

    def __init__(self, bootstrap: str, sentinels: dict[int, str]) -> None:
        import uuid

        from models import topics

        self.consumer = clients.consumer(bootstrap, f"ops-test-watcher-{uuid.uuid4().hex}")
        self.consumer.subscribe([topics.HISTORY, topics.DLQ, topics.NOTIFICATIONS])
        self.waiting = set(sentinels.values())
        self.read: dict[tuple[str, int], int] = {}  # (topic, partition) -> the next offset to read

    def poll(self, seconds: float = 0.5) -> None:
        from models import topics

        for message in self.consumer.consume(1000, timeout=seconds):
            if message.error():
                continue
            key = (message.topic(), message.partition())
            self.read[key] = max(self.read.get(key, 0), message.offset() + 1)
            if message.topic() == topics.HISTORY and self.waiting:
                for record in json.loads(message.value() or b"[]"):
                    if (record.get("record_type"), record.get("status"), record.get("previous_status")) == (
                            "alert", "warehouse_delay", "open"):
                        self.waiting.discard(record.get("order_id"))

    def sentinels_seen(self) -> bool:
        self.poll()
        return not self.waiting

    def positions(self, topic: str) -> dict[int, int]:
        return {partition: offset for (name, partition), offset in self.read.items() if name == topic}


def committed_at_least(bootstrap: str, group: str, topic: str, wanted: dict[int, int]) -> bool:
    """Whether the consumer group has committed every partition of the topic up to ``wanted``."""
    from confluent_kafka import TopicPartition

    probe = clients.consumer(bootstrap, group)
    try:
        committed = probe.committed([TopicPartition(topic, p) for p in wanted], timeout=10)
    finally:
        probe.close()
    return all(tp.offset >= wanted[tp.partition] for tp in committed)


@pytest.fixture(scope="module")
def ops(tmp_path_factory) -> dict:
    """The pipeline's panels after simulated traffic, read once the pipeline provably processed
    it: the wait looks at consumer positions and sentinel records, never at the panels, so a
    panel without rows (or with broken SQL) fails the tests instead of timing out here."""
    from broker.embedded import EmbeddedBroker
    from models import topics
    from notifier.worker import GROUP as NOTIFIER_GROUP
    from sinks.clickhouse import GROUP as SINK_GROUP
    from tests.integration.conftest import PARTITIONS

    with EmbeddedBroker() as embedded:
        clients.create_topics(embedded.bootstrap, PARTITIONS)
        run = Pipeline(embedded.bootstrap, tmp_path_factory.mktemp("ops") / "data")
        port = free_port()
        run.env.update(TRACKLINE_THRESHOLDS=str(DEMO_THRESHOLDS), TRACKLINE_TICK_INTERVAL="1")
        run.extra_args["sink"] = ["--ops-port", str(port)]
        sentinels = sentinel_orders()
        watcher = Watcher(run.bootstrap, sentinels)
        try:
            run.start("worker", "sink", "notifier")
            traffic = threading.Thread(target=simulator.run, args=(clients.producer(run.bootstrap), 10, 20),
                                       kwargs={"seed": 5})
            traffic.start()
            traffic.join()
            place_sentinels(run.bootstrap, sentinels)
            # 1. Every partition's timer passed the sentinel's deadline: the traffic's deadlines
            #    were ticked and their alerts, notices and history produced.
            run.wait_for(watcher.sentinels_seen, 120, f"the sentinel alerts of {sorted(sentinels.values())}")
            # 2. The notifier handled every command produced so far (its outcome rows are history).
            notified = watcher.positions(topics.NOTIFICATIONS)
            run.wait_for(lambda: committed_at_least(run.bootstrap, NOTIFIER_GROUP, topics.NOTIFICATIONS, notified),
                         60, f"the notifier to commit {notified}")
            # 3. The sink inserted and committed every history row and dead letter read so far.
            watcher.poll(2)
            for topic in (topics.HISTORY, topics.DLQ):
                read = watcher.positions(topic)
                run.wait_for(lambda topic=topic, read=read: committed_at_least(run.bootstrap, SINK_GROUP, topic, read),
                             60, f"the sink to commit {topic} up to {read}")
            results = panel_results(port)
            pages = {uid: chromium_dom(f"http://127.0.0.1:{port}/d/{uid}") for uid in DASHBOARDS}
            return {"results": results, "pages": pages}
        finally:
            watcher.consumer.close()
            run.stop()


def chromium_dom(url: str, virtual_time_ms: int = 30000) -> str:
    """The DOM after ``virtual_time_ms`` of the page's own (virtual) time: scripts ran, timers fired."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "headless Chromium is needed: `make test` installs Debian's chromium package"
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           f"--virtual-time-budget={virtual_time_ms}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120)
    return done.stdout


def test_every_panel_query_returns_the_columns_its_panel_draws(ops):
    for (uid, title), result in ops["results"].items():
        panel = next(p for p in DASHBOARDS[uid]["panels"] if p["title"] == title)
        assert "error" not in result, f"{uid}: {title!r} fails: {result['error']}"
        assert result["rows"], f"{uid}: {title!r} would show No data"
        assert len(result["columns"]) >= 2, f"{uid}: {title!r}"
        if panel["type"] == "timeseries":
            assert result["columns"][0] == "time", f"{uid}: {title!r} has no time column"
            assert all(isinstance(row[-1], (int, float)) for row in result["rows"]), f"{uid}: {title!r}"


def test_every_dashboard_offers_the_template_variables_ops_filter_by(ops):
    names = {v["name"] for d in DASHBOARDS.values() for v in d["templating"]["list"]}
    assert {"carrier", "service_level", "seller", "fulfillment_center", "order_id"} <= names
    assert len(DASHBOARDS) == 5


def test_headless_chromium_sees_data_in_every_panel(ops):
    for uid, dom in ops["pages"].items():
        states = re.findall(r'<div class="panel" id="panel-(\d+)" data-state="(\w+)"', dom)
        assert len(states) == len(DASHBOARDS[uid]["panels"]), f"{uid}: {dom[:500]}"
        assert {state for _, state in states} == {"data"}, f"{uid}: {states}"
        assert DASHBOARDS[uid]["title"] in dom
