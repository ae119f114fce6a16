"""``trackline demo``: the whole pipeline in one process tree on simulated traffic.

Starts the embedded broker (unless TRACKLINE_KAFKA names one), the Faust worker, the
ClickHouse sink and the notifier as child processes, produces simulated traffic from
this process, shows progress, then drains, stops everything and summarises what
ClickHouse and the notification outbox hold, checked against the simulator's ground truth:
what became of each kind of traffic (type-confused payloads, the carrier an hour late,
carriers under a second name, the burst of old journeys, labels never announced), and
every delay notice for a journey that met its deadlines (``false_delay_notices``).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from statistics import median

import orjson
from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr

from broker import clients
from broker.embedded import EmbeddedBroker, free_port
from models import topics
from models.effects import AlertKind, NotificationType, stable_id
from models.ingest import DOORS
from models.settings import WEBHOOK_SOURCES, Settings
from trackline import simulator
from trackline.demo_receivers import LoopbackMail, LoopbackWebhooks
from trackline.webhook_sender import WebhookSender

log = logging.getLogger("trackline.demo")
# Package data (config/): found from a checkout and from an installed wheel alike.
DEMO_THRESHOLDS = Path(str(resources.files("config") / "detection-demo.toml"))
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


def _scrape(port: int) -> dict[str, object]:
    """A process's /metrics as Prometheus reads it: a few figures, or why it did not answer."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError as error:
        return {"answered": False, "error": str(error)}
    totals: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("trackline_events_in_total", "trackline_dead_letters_total",
                               "trackline_sink_rows_total", "trackline_notifier_outcomes_total",
                               "trackline_ingest_requests_total"):
                totals[sample.name] += int(sample.value)
    return {"answered": True, **dict(sorted(totals.items()))}


def _spawn(command: str, settings: Settings, bootstrap: str, logs: Path, *extra: str) -> subprocess.Popen:
    out = open(logs / f"{command}.log", "ab")
    env = dict(os.environ)
    if settings.support_token:  # secrets travel in the environment, never as flags
        env["TRACKLINE_SUPPORT_TOKEN"] = settings.support_token.get_secret_value()
    for source in WEBHOOK_SOURCES:
        if held := settings.webhook_secrets(source):
            env[f"TRACKLINE_SECRET_{source.upper()}"] = ",".join(held)
    # The notifier's channels and the tracking page links: settings without flags.
    for name in ("smtp_host", "smtp_port", "sms_url", "push_url", "tracking_page_base_url"):
        if value := getattr(settings, name):
            env[f"TRACKLINE_{name.upper()}"] = str(value)
    if settings.notifier_http_secret:
        env["TRACKLINE_NOTIFIER_HTTP_SECRET"] = settings.notifier_http_secret.get_secret_value()
    if settings.tracking_page_keys:
        env["TRACKLINE_TRACKING_PAGE_KEYS"] = ",".join(k.get_secret_value() for k in settings.tracking_page_keys)
    return subprocess.Popen(
        [sys.executable, "-m", "trackline", command, "--kafka", bootstrap,
         "--data-dir", str(settings.data_dir), "--partitions", str(settings.partitions),
         "--clickhouse", settings.clickhouse_dsn, "--log-level", settings.log_level, *extra],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
    )


def run_demo(settings: Settings, duration: float, report: Path | None,
             orders_per_second: float = 20.0, seed: int = 7, keep_serving: bool = False) -> int:
    run_dir = settings.data_dir / "runs" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir.mkdir(parents=True, exist_ok=True)
    logs = run_dir / "logs"
    logs.mkdir()
    settings = settings.model_copy(update=dict(
        data_dir=run_dir, log_level="warn", web_port=free_port() if settings.web_port == 6066 else settings.web_port,
        thresholds=settings.thresholds or str(DEMO_THRESHOLDS),
        # The order lookup needs a support token: the demo makes one up unless one is set.
        support_token=settings.support_token or SecretStr(secrets.token_urlsafe(16)),
        # Each source's webhook secret: the demo's senders sign with the ones it makes up.
        **{f"secret_{source}": getattr(settings, f"secret_{source}") or [SecretStr(secrets.token_urlsafe(16))]
           for source in WEBHOOK_SOURCES}))
    broker = None
    if settings.embedded_broker:
        broker = EmbeddedBroker(log_path=logs / "broker.log").start()
        bootstrap = broker.bootstrap
    else:
        bootstrap = settings.kafka
    # The far end of the notifications: a mail server and an SMS/push endpoint on loopback.
    mail = LoopbackMail(run_dir / "mail.mbox", free_port()).start()
    http_secret = secrets.token_urlsafe(24)
    webhooks = LoopbackWebhooks(run_dir / "http-deliveries.jsonl", http_secret).start()
    settings = settings.model_copy(update=dict(
        smtp_host="127.0.0.1", smtp_port=mail.port, sms_url=f"{webhooks.url}/sms", push_url=f"{webhooks.url}/push",
        notifier_http_secret=SecretStr(http_secret),
        # Links in the commands to the worker's own tracking page.
        tracking_page_base_url=settings.tracking_page_base_url or f"http://127.0.0.1:{settings.web_port}",
        tracking_page_keys=settings.tracking_page_keys or [SecretStr(f"demo:{secrets.token_urlsafe(24)}")]))
    children: dict[str, subprocess.Popen] = {}
    ingest: dict[str, object] = {}
    scraped: dict[str, dict[str, object]] = {}
    try:
        clients.create_topics(bootstrap, settings.partitions)
        children["worker"] = _spawn("worker", settings, bootstrap, logs, "--web-port", str(settings.web_port),
                                    "--thresholds", settings.thresholds, "--tick-interval", "2")
        ops_port = free_port()
        metrics_ports = {"worker": settings.web_port, "sink": free_port(), "notifier": free_port(),
                         "ingest": free_port()}
        children["sink"] = _spawn("sink", settings, bootstrap, logs, "--ops-port", str(ops_port),
                                  "--metrics-port", str(metrics_ports["sink"]))
        children["notifier"] = _spawn("notifier", settings, bootstrap, logs, "--copy-to-outbox",
                                      "--metrics-port", str(metrics_ports["notifier"]))
        ingest_port = free_port()
        children["ingest"] = _spawn("ingest", settings, bootstrap, logs, "--port", str(ingest_port),
                                    "--metrics-port", str(metrics_ports["ingest"]))
        _wait_for_ingest(ingest_port, children)
        print(f"trackline demo: data in {run_dir}; {duration:.0f}s of traffic at "
              f"{orders_per_second:g} orders/s; logs in {logs}", flush=True)
        assert settings.support_token is not None  # the demo set one above (or made one up)
        print(f"ops page (the Grafana dashboards, read-only): http://127.0.0.1:{ops_port}/   "
              f"order lookup: curl -H 'Authorization: Bearer {settings.support_token.get_secret_value()}' "
              f"http://127.0.0.1:{settings.web_port}/api/orders/<order id>", flush=True)
        print(f"ingest: http://127.0.0.1:{ingest_port}/webhooks/<easypost|aftership|shippo|generic|x12-214> and "
              f"/events/fc; the simulated carriers and fulfillment centers POST there, signed", flush=True)
        print("Prometheus metrics: " + ", ".join(f"http://127.0.0.1:{port}/metrics ({name})"
                                                for name, port in metrics_ports.items()), flush=True)
        watch = PipelineWatch(bootstrap, settings.partitions)
        sent: dict[str, int] = {}
        truth = simulator.TrafficSimulator(seed=seed)
        senders = WebhookSender("127.0.0.1", ingest_port, {
            door: settings.webhook_secrets(d.setting)[0] for door, d in DOORS.items()}, clients.producer(bootstrap))
        traffic = threading.Thread(target=lambda: sent.update(simulator.run(
            senders, orders_per_second, duration, simulator=truth)), daemon=True)
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
        scraped = {name: _scrape(port) for name, port in metrics_ports.items()}
        watch.close()
        senders.close()
        ingest = {"url": f"http://127.0.0.1:{ingest_port}/",
                  "answers": {str(k): v for k, v in sorted(senders.answers.items())},
                  "all_accepted": set(senders.answers) <= {202},
                  "produced_directly": f"{senders.direct} (no HTTP door: preferences, a made-up source)"}
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
        mail.stop()
        webhooks.stop()
        if broker:
            broker.stop()
    summary = summarize(settings, sent, run_dir, truth)
    summary["ingest"] = ingest
    summary["metrics"] = scraped
    summary["notifications_received"] = {"email": mail.report(), "sms_and_push": webhooks.report()}
    outbox = run_dir / "notifications.jsonl"
    lines = outbox.read_bytes().splitlines() if outbox.exists() else []
    sample = next((orjson.loads(line)["tracking_page_url"] for line in lines if line.strip()), "")
    summary["tracking_page_sample"] = sample
    text = json.dumps(summary, indent=2, sort_keys=False, default=str)
    print(text)
    print(f"e-mails: {mail.report()['emails_received']} received by the loopback SMTP server "
          f"({mail.path}); SMS and push: {webhooks.report()['received_by_channel']} ({webhooks.path})")
    print(f"a tracking page (served while the worker runs; --keep-serving keeps it): {sample}")
    print(f"false delay notices: {summary.get('false_delay_notices')} (a delay or presumed-lost notice for a "
          f"journey the simulator made on time; offenders in false_delay_offenders)")
    print(f"this run's history: trackline query --data-dir {run_dir} \"SELECT count() FROM history\"")
    if report:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(text + "\n")
        print(f"report written to {report}")
    return 0


def _wait_for_ingest(port: int, children: dict[str, subprocess.Popen], timeout: float = 60) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_children(children)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError("the ingest service did not answer /healthz in time; see its log")


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


def summarize(settings: Settings, sent: dict[str, int], run_dir: Path,
              truth: simulator.TrafficSimulator | None = None) -> dict:
    from sinks.clickhouse import connect

    client = connect(settings.clickhouse_dsn)

    def rows(sql: str) -> list[tuple]:
        return [tuple(row) for row in client.query(sql).result_rows]  # rows come as tuples; typed as sequences

    outbox = run_dir / "notifications.jsonl"
    delivered = Counter(orjson.loads(line)["type"] for line in outbox.read_bytes().splitlines()
                        if line.strip()) if outbox.exists() else Counter()
    dead_letters = rows("SELECT count() FROM dead_letters FINAL")[0][0]
    expected_dead_letters = sent.get("malformed", 0) + sent.get("type_confused", 0)
    checked = traffic_checks(rows, truth, outbox, sent) if truth is not None else {}
    return {
        "simulated": sent,
        **checked,
        "events_ingested_by_source": dict(rows(
            "SELECT source, count() FROM history FINAL WHERE record_type = 'event' GROUP BY source ORDER BY source")),
        "notifications_by_type": dict(rows(
            "SELECT status, count() FROM history FINAL WHERE record_type = 'notification' "
            "GROUP BY status ORDER BY status")),
        "notifications_delivered_by_type": dict(sorted(delivered.items())),
        "deliveries_by_channel_and_outcome": {f"{channel} {outcome}": n for channel, outcome, n in rows(
            "SELECT source, extract(detail, '^[a-z]+') AS outcome, count() FROM history FINAL "
            "WHERE record_type = 'delivery' GROUP BY source, outcome ORDER BY source, outcome")},
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
        "dead_letters": dead_letters,
        "dead_letters_expected": {"malformed + type_confused sent": expected_dead_letters,
                                  "equal": dead_letters == expected_dead_letters},
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


def _outcome(detail: str) -> str:
    """'queued', 'deferred', 'suppressed: stale', 'suppressed: opted_out' from a notification row's detail."""
    return detail if detail.startswith("suppressed") else detail.split(" ")[0]


def traffic_checks(rows: Callable[[str], list[tuple]], truth: simulator.TrafficSimulator, outbox: Path,
                   sent: dict[str, int]) -> dict:
    """What became of each kind of simulated traffic, and the delay notices no journey deserved."""
    from sinks.clickhouse import payload_hash

    journeys = truth.journeys
    packages = {p.tracking_number: (j, p) for j in journeys.values() for p in j.packages}
    # Per tracking number: distinct scans matched to an order, left unmatched, and the median feed delay.
    scans = {number: (matched, unmatched, delay) for number, matched, unmatched, delay in rows(
        "SELECT tracking_number, uniqExactIf(event_id, order_id != '' AND NOT startsWith(detail, 'rejected')), "
        "uniqExactIf(event_id, startsWith(detail, 'unmatched')), "
        "median(dateDiff('millisecond', occurred_at, ingested_at)) / 60000 "
        "FROM history FINAL WHERE record_type = 'event' AND source != 'fulfillment' GROUP BY tracking_number")}
    notes = rows("SELECT order_id, package_id, status, event_id, detail, occurred_at, ingested_at "
                 "FROM history FINAL WHERE record_type = 'notification'")

    def scan_counts(chosen: list) -> dict:
        expected = sum(p.scans for _, p in chosen)
        matched = sum(min(scans.get(p.tracking_number, (0, 0, 0))[0], p.scans) for _, p in chosen)
        unmatched = sum(scans.get(p.tracking_number, (0, 0, 0))[1] for _, p in chosen)
        return {"packages": len(chosen), "scans": expected, "scans_matched_to_orders": matched,
                "scans_unmatched": unmatched,
                "packages_missing_scans": sorted(p.tracking_number for _, p in chosen
                                                 if scans.get(p.tracking_number, (0, 0, 0))[0] < p.scans)[:10]}

    # False delay notices: a delay, or a package presumed lost, told for a journey that met its deadlines.
    # A notification row's event_id is the command id; a presumed-lost exception's is derived from
    # (order, package, "exception", "lost") (models/order.py), and the outbox says its reason when sent.
    commands = [orjson.loads(line) for line in outbox.read_bytes().splitlines() if line.strip()] \
        if outbox.exists() else []
    lost = {c["command_id"] for c in commands if c.get("type") == "exception" and c.get("reason") == "lost"}
    told_late: set[str] = set()
    offenders = []
    for order_id, package_id, status, event_id, detail, occurred_at, decided_at in notes:
        if status == NotificationType.delayed.value:
            notice = "delayed"
        elif status == NotificationType.exception.value and (event_id in lost or event_id == stable_id(
                order_id, package_id, NotificationType.exception.value, "lost")):
            notice = "exception: lost"
        else:
            continue
        if truth.deserves_delay_notice(order_id, package_id):
            told_late.add(order_id)
            continue
        journey = journeys.get(order_id)
        package = next((p for p in journey.packages if p.package_id == package_id), None) if journey else None
        offenders.append({
            "order_id": order_id, "package_id": package_id, "notice": notice, "outcome": detail,
            "deadline": str(occurred_at), "decided_at": str(decided_at),
            "journey": {"traffic": journey.traffic, "trouble": journey.trouble,
                        "happened_hours_before_sent": journey.shift.total_seconds() / 3600,
                        "carrier": f"{package.announced_as} / {package.scanned_as} ({package.source})"
                        if package else ""} if journey else "not simulated"})
    if offenders:  # what ops saw for those orders, and what the customer was told
        ids = ", ".join(f"'{o['order_id']}'" for o in offenders)
        alerts: dict[str, list[str]] = {}
        for order_id, kind, state, detail, due, at in rows(
                "SELECT order_id, status, previous_status, detail, occurred_at, ingested_at FROM history FINAL "
                f"WHERE record_type = 'alert' AND order_id IN ({ids}) ORDER BY ingested_at"):
            alerts.setdefault(order_id, []).append(f"{kind} {state} (due {due}, at {at}): {detail}")
        reasons = {(c["order_id"], c.get("package_id", ""), c["type"]): c.get("reason", "") for c in commands
                   if c.get("type") in ("delayed", "exception")}
        for offender in offenders:
            offender["alerts"] = alerts.get(offender["order_id"], [])
            offender["reason"] = reasons.get((offender["order_id"], offender["package_id"],
                                              offender["notice"].split(":")[0]), "")

    dead = {h: reason for h, reason in rows("SELECT payload_hash, reason FROM dead_letters FINAL")}
    confused = [dead.get(payload_hash(value), "not dead-lettered") for value in truth.type_confused]
    late_feed = [(j, p) for j in journeys.values() if j.traffic == "late_feed" for p in j.packages]
    burst = [j for j in journeys.values() if j.traffic == "old_burst"]
    burst_ids = {j.order_id for j in burst}
    burst_notes: dict[str, Counter[str]] = {}
    stale: Counter[str] = Counter()
    for order_id, _, status, _, detail, _, _ in notes:
        if order_id in burst_ids:
            burst_notes.setdefault(status, Counter())[_outcome(detail)] += 1
        if detail == "suppressed: stale":
            stale[status] += 1
    fc_events = rows("SELECT count() FROM history FINAL WHERE record_type = 'event' AND source = 'fulfillment' "
                     f"AND order_id IN ({', '.join(repr(i) for i in burst_ids) or repr('')})")[0][0]
    second_names: dict[str, list] = {}
    for journey, package in packages.values():
        if package.second_name:
            name = f"{package.announced_as} -> {package.scanned_as} ({package.source})"
            second_names.setdefault(name, []).append((journey, package))
    late = [j for j in journeys.values() if j.late]
    by_trouble: dict[str, list] = {}
    for journey in late:
        by_trouble.setdefault(journey.trouble, []).append(journey)
    delays = [scans[p.tracking_number][2] for _, p in late_feed if p.tracking_number in scans]
    return {
        "false_delay_notices": len(offenders),
        "false_delay_offenders": offenders,
        "delay_notices_deserved": {
            "journeys_on_time": len(journeys) - len(late), "journeys_designed_late": len(late),
            "of_them_told": len(told_late),
            # Stale tracking is for ops only; a late warehouse waits the fulfillment feed's allowance,
            # which old fulfillment events (the burst, backlog orders) raise to its cap.
            "told_by_trouble": {trouble: f"{sum(j.order_id in told_late for j in chosen)} of {len(chosen)}"
                                for trouble, chosen in sorted(by_trouble.items())}},
        "notices_suppressed_stale": dict(sorted(stale.items())),
        "traffic": {
            "type_confused": {"sent": len(confused), "dead_lettered_by_reason": dict(Counter(confused))},
            "late_feed_carrier": {
                "carrier": simulator.LATE_FEED_CARRIER[0],
                "scans_sent_minutes_after_they_happened": simulator.FEED_DELAY.total_seconds() / 60,
                "journeys": sum(j.traffic == "late_feed" for j in journeys.values()), **scan_counts(late_feed),
                "median_scan_delay_minutes_seen": round(median(delays), 1) if delays else None},
            "second_name_carriers": {name: scan_counts(chosen) for name, chosen in sorted(second_names.items())},
            "old_burst": {
                "journeys": len(burst), "messages": sent.get("old_burst messages", 0),
                "sent_at_second": truth.burst_at,
                "happened_hours_before": [round(min((j.shift.total_seconds() / 3600 for j in burst), default=0), 1),
                                          round(max((j.shift.total_seconds() / 3600 for j in burst), default=0), 1)],
                "fulfillment_events": 2 * len(burst) + sum(len(j.packages) for j in burst),
                "fulfillment_events_ingested": fc_events, **scan_counts([(j, p) for j in burst for p in j.packages]),
                "notifications": {t: dict(sorted(c.items())) for t, c in sorted(burst_notes.items())}},
            "unannounced_labels": {
                "sent": len(truth.unannounced),
                "scans_unmatched": sum(scans.get(n, (0, 0, 0))[1] for n in truth.unannounced),
                "scans_matched_to_orders": sum(scans.get(n, (0, 0, 0))[0] for n in truth.unannounced)},
            "all_packages": scan_counts(list(packages.values())),
        },
    }
