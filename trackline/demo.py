"""``trackline demo``: the whole pipeline in one process tree on simulated traffic.

Starts the embedded broker (unless TRACKLINE_KAFKA names one), the Faust worker, the
ClickHouse sink and the notifier as child processes, produces simulated traffic from
this process, shows progress, then drains, stops everything and summarises what
ClickHouse and the notification outbox hold.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import orjson
from confluent_kafka import Consumer, TopicPartition

from broker import clients
from broker.embedded import EmbeddedBroker, free_port
from models import topics
from models.effects import AlertKind, NotificationType
from models.settings import Settings
from trackline import simulator

log = logging.getLogger("trackline.demo")
DEMO_THRESHOLDS = next((f for f in (Path(__file__).resolve().parents[1] / "config" / "detection-demo.toml",
                                    Path.cwd() / "config" / "detection-demo.toml") if f.is_file()),
                       Path("config/detection-demo.toml"))
# The longest demo threshold (presumed lost, 30 s) plus a tick: how long detections keep
# coming after the last simulated scan.
SETTLE_SECONDS = 40


class PipelineWatch:
    """Counts what flows through the topics, for the progress line (reads, never commits)."""

    def __init__(self, bootstrap: str, partitions: int) -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "trackline-demo-watch",
                                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        watched = [topics.FC_EVENTS, topics.CARRIER_SCANS_RAW, topics.NOTIFICATIONS, topics.ALERTS, topics.HISTORY]
        self.consumer.assign([TopicPartition(t, p, 0) for t in watched for p in range(partitions)]
                             + [TopicPartition(topics.DLQ, 0, 0)])
        self.counts: Counter[str] = Counter()
        self.notifications: Counter[str] = Counter()
        self.last_change = time.monotonic()

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for m in self.consumer.consume(5000, timeout=0.2):
                if m.error():
                    continue
                self.last_change = time.monotonic()
                topic = m.topic()
                if topic == topics.NOTIFICATIONS:
                    self.notifications[orjson.loads(m.value())["type"]] += 1
                elif topic == topics.ALERTS:
                    self.counts["alerts"] += b'"state":"open"' in m.value()
                elif topic == topics.HISTORY:
                    self.counts["history records"] += m.value().count(b'"record_id"')
                else:
                    self.counts[topic] += 1

    def line(self, elapsed: float) -> str:
        c = self.counts
        return (f"[{elapsed:6.1f}s] fc events {c[topics.FC_EVENTS]:>6} | carrier webhooks "
                f"{c[topics.CARRIER_SCANS_RAW]:>6} | notifications {sum(self.notifications.values()):>6} "
                f"| alerts {c['alerts']:>5} | history records {c['history records']:>7} "
                f"| dead letters {c[topics.DLQ]:>3}")

    def close(self) -> None:
        self.consumer.close()


def _spawn(command: str, settings: Settings, bootstrap: str, logs: Path, *extra: str) -> subprocess.Popen:
    out = open(logs / f"{command}.log", "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "trackline", command, "--kafka", bootstrap,
         "--data-dir", str(settings.data_dir), "--partitions", str(settings.partitions),
         "--clickhouse", settings.clickhouse_dsn, "--log-level", settings.log_level, *extra],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )


def run_demo(settings: Settings, duration: float, report: Path | None,
             orders_per_second: float = 20.0, seed: int = 7, keep_serving: bool = False) -> int:
    run_dir = settings.data_dir / "runs" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir.mkdir(parents=True, exist_ok=True)
    logs = run_dir / "logs"
    logs.mkdir()
    settings = replace(settings, data_dir=run_dir, log_level="warn",
                       web_port=free_port() if settings.web_port == 6066 else settings.web_port,
                       thresholds=settings.thresholds or str(DEMO_THRESHOLDS))
    broker = None
    if settings.embedded_broker:
        broker = EmbeddedBroker(log_path=logs / "broker.log").start()
        bootstrap = broker.bootstrap
    else:
        bootstrap = settings.kafka
    children: dict[str, subprocess.Popen] = {}
    try:
        clients.create_topics(bootstrap, settings.partitions)
        children["worker"] = _spawn("worker", settings, bootstrap, logs, "--web-port", str(settings.web_port),
                                    "--thresholds", settings.thresholds, "--tick-interval", "2")
        ops_port = free_port()
        children["sink"] = _spawn("sink", settings, bootstrap, logs, "--ops-port", str(ops_port))
        children["notifier"] = _spawn("notifier", settings, bootstrap, logs)
        print(f"trackline demo: data in {run_dir}; {duration:.0f}s of traffic at "
              f"{orders_per_second:g} orders/s; logs in {logs}", flush=True)
        print(f"ops page (the Grafana dashboards, read-only): http://127.0.0.1:{ops_port}/   "
              f"order lookup: http://127.0.0.1:{settings.web_port}/api/orders/<order id>", flush=True)
        watch = PipelineWatch(bootstrap, settings.partitions)
        sent: dict[str, int] = {}
        traffic = threading.Thread(target=lambda: sent.update(simulator.run(
            clients.producer(bootstrap), orders_per_second, duration, seed=seed)), daemon=True)
        started = time.monotonic()
        traffic.start()
        while traffic.is_alive():
            watch.poll(5.0)
            _check_children(children)
            print(watch.line(time.monotonic() - started), flush=True)
        # Drain: let the last deadlines pass, then wait until nothing new has flowed for a few seconds.
        print(f"traffic done; waiting {SETTLE_SECONDS}s for the last deadlines (lost, feedback) to pass",
              flush=True)
        settle_until = time.monotonic() + SETTLE_SECONDS
        drain_deadline = settle_until + 120
        while ((time.monotonic() < settle_until or time.monotonic() - watch.last_change < 6)
               and time.monotonic() < drain_deadline):
            watch.poll(2.0)
            _check_children(children)
            if time.monotonic() < settle_until:
                print(watch.line(time.monotonic() - started), flush=True)
        print(watch.line(time.monotonic() - started) + "  (drained)", flush=True)
        watch.close()
        if keep_serving:
            print(f"serving the ops page on http://127.0.0.1:{ops_port}/ until Ctrl-C", flush=True)
            try:
                while True:
                    time.sleep(1)
                    _check_children(children)
            except KeyboardInterrupt:
                pass
    finally:
        _stop(children)
        if broker:
            broker.stop()
    summary = summarize(settings, sent, run_dir)
    text = json.dumps(summary, indent=2, sort_keys=False, default=str)
    print(text)
    if report:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(text + "\n")
        print(f"report written to {report}")
    return 0


def _check_children(children: dict[str, subprocess.Popen]) -> None:
    for name, process in children.items():
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}; see its log")


def _stop(children: dict[str, subprocess.Popen]) -> None:
    for process in children.values():
        if process.poll() is None:
            process.terminate()
    for name, process in children.items():
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", name)
            process.kill()
            process.wait()


def _empty_panels(client: object) -> list[str]:
    """Every dashboard panel, run as the ops page runs it: which would show "No data"."""
    import threading

    from trackline.ops_page import OpsPage, client_query

    page = OpsPage(client_query(client, threading.Lock()))
    empty = []
    for uid, dashboard in page.dashboards.items():
        for panel in dashboard["panels"]:
            if not page.panel_rows(uid, panel["id"], {})["rows"]:
                empty.append(f"{uid}: {panel['title']}")
    return empty


def summarize(settings: Settings, sent: dict[str, int], run_dir: Path) -> dict:
    from sinks.clickhouse import connect

    client = connect(settings.clickhouse_dsn)

    def rows(sql: str) -> list[tuple]:
        return list(client.query(sql).result_rows)

    outbox = run_dir / "notifications.jsonl"
    delivered = Counter(orjson.loads(line)["type"] for line in outbox.read_bytes().splitlines()
                        if line.strip()) if outbox.exists() else Counter()
    return {
        "simulated": sent,
        "events_ingested_by_source": dict(rows(
            "SELECT source, count() FROM history FINAL WHERE record_type = 'event' GROUP BY source ORDER BY source")),
        "notifications_by_type": dict(rows(
            "SELECT status, count() FROM history FINAL WHERE record_type = 'notification' "
            "GROUP BY status ORDER BY status")),
        "notifications_delivered_by_type": dict(sorted(delivered.items())),
        "notification_outcomes": dict(rows(
            "SELECT extract(detail, '^[a-z]+') AS outcome, count() FROM history FINAL "
            "WHERE record_type = 'notification' GROUP BY outcome ORDER BY outcome")),
        "detections_by_kind": dict(rows(
            "SELECT status, count() FROM history FINAL WHERE record_type = 'alert' AND previous_status = 'open' "
            "GROUP BY status ORDER BY status")),
        "alerts_still_open": rows(
            "SELECT count() FROM (SELECT event_id, argMax(previous_status, ingested_at) AS state "
            "FROM history FINAL WHERE record_type = 'alert' GROUP BY event_id) WHERE state = 'open'")[0][0],
        "update_types_missing": sorted(
            {t.value for t in NotificationType} - {r[0] for r in rows(
                "SELECT DISTINCT status FROM history FINAL WHERE record_type = 'notification'")}),
        "detection_kinds_missing": sorted(
            {k.value for k in AlertKind} - {r[0] for r in rows(
                "SELECT DISTINCT status FROM history FINAL WHERE record_type = 'alert'")}),
        "history_rows_written": rows("SELECT count() FROM history FINAL")[0][0],
        "history_rows_by_type": dict(rows(
            "SELECT record_type, count() FROM history FINAL GROUP BY record_type ORDER BY record_type")),
        "dead_letters": rows("SELECT count() FROM dead_letters FINAL")[0][0],
        "dead_letters_by_reason": dict(rows(
            "SELECT reason, count() FROM dead_letters FINAL GROUP BY reason ORDER BY reason")),
        "dashboard_panels_without_data": _empty_panels(client),
        "data": {
            "run_dir": str(run_dir),
            "clickhouse": settings.clickhouse_dsn,
            "clickhouse_tables": [r[0] for r in rows("SHOW TABLES")],
            "read_it_with": f"clickhouse_connect.get_client(dsn={settings.clickhouse_dsn!r})",
            "notifications_outbox": str(outbox),
            "worker_tables": str(run_dir / "worker"),
            "broker": "embedded Tansu, memory-only: topics are gone now"
            if settings.embedded_broker else settings.kafka,
        },
    }
