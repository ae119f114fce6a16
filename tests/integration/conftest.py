"""Real engines only: the embedded Tansu broker, the Faust worker as its own process,
the sink on chDB through clickhouse-connect, and the reference notifier."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from broker import clients
from broker.embedded import EmbeddedBroker, free_port

PARTITIONS = 3
SENTINEL = "SENTINEL-"  # order ids of the records that prove a hop has processed what came before
SUPPORT_TOKEN = "test-support-token-7c1d"  # what support tools send to the worker's order lookup
pytestmark = pytest.mark.integration


class Pipeline:
    def __init__(self, bootstrap: str, data_dir: Path) -> None:
        self.bootstrap = bootstrap
        self.data_dir = data_dir
        self.logs = data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen] = {}
        self.outbox = data_dir / "notifications.jsonl"
        self.dsn = f"chdb://{data_dir / 'clickhouse'}"
        self.web_port = free_port()
        self.ingest_port = free_port()
        self.env = dict(os.environ)  # TRACKLINE_* settings for the processes started next
        self.env["TRACKLINE_SUPPORT_TOKEN"] = SUPPORT_TOKEN
        self.extra_args: dict[str, list[str]] = {}  # more flags, by process name
        self.web_ports: dict[str, int] = {}  # each worker's web server, by process name

    def start(self, *names: str) -> Pipeline:
        for name in names:
            command = name.split("-")[0]  # "worker-2": a second worker process
            port = self.web_port if name == "worker" else self.web_ports.get(name) or free_port()
            if command == "worker":
                self.web_ports[name] = port
            extra = (["--web-port", str(port)] if command == "worker" else
                     ["--port", str(self.ingest_port)] if command == "ingest" else []) + self.extra_args.get(name, [])
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "trackline", command, "--kafka", self.bootstrap,
                 "--data-dir", str(self.data_dir / name if command == "worker" else self.data_dir),
                 "--partitions", str(PARTITIONS),
                 "--log-level", "info", *extra],
                stdout=open(self.logs / f"{name}.log", "ab"), stderr=subprocess.STDOUT, env=self.env,
            )
        return self

    def lookup(self, order_id: str, token: str | None = SUPPORT_TOKEN) -> tuple[int, dict]:
        """``GET /api/orders/{order_id}`` on the worker, as a support tool would call it."""
        return self.get(f"/api/orders/{order_id}", token)

    def get(self, path: str, token: str | None = None, port: int | None = None) -> tuple[int, dict]:
        """A GET on the worker's web server (or the one on ``port``), with the support token as a
        bearer token if given."""
        import urllib.error
        import urllib.request

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(f"http://127.0.0.1:{port or self.web_port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, orjson.loads(r.read())
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                return error.code, orjson.loads(body)
            except orjson.JSONDecodeError:
                return error.code, {"body": body.decode(errors="replace")}

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
        """A POST to the ingest service, as a carrier's webhook sender makes it: status, JSON, headers."""
        import urllib.error
        import urllib.request

        request = urllib.request.Request(f"http://127.0.0.1:{self.ingest_port}{path}", data=body,
                                         headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, orjson.loads(r.read()), dict(r.headers)
        except urllib.error.HTTPError as error:
            return error.code, orjson.loads(error.read() or b"{}"), dict(error.headers)

    def ingest_ready(self, timeout: float = 30) -> None:
        import urllib.error
        import urllib.request

        def up() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.ingest_port}/healthz", timeout=2) as r:
                    return r.status == 200
            except (urllib.error.URLError, OSError):
                return False

        self.wait_for(up, timeout, "the ingest service to answer /healthz")

    def kill(self, name: str) -> None:
        """Like a crash: no shutdown, no final commit."""
        self.processes[name].send_signal(signal.SIGKILL)
        self.processes[name].wait()

    def stop(self, *names: str) -> None:
        for name in names or list(self.processes):
            process = self.processes.get(name)
            if process and process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def delivered(self, sentinels: bool = False) -> list[dict]:
        """What the notifier delivered (without the sentinels of ``settle``, unless asked)."""
        if not self.outbox.exists():
            return []
        # The notifier appends while this reads: only whole lines (ending in a newline) count.
        text = self.outbox.read_bytes()
        found = [orjson.loads(line) for line in text[:text.rfind(b"\n") + 1].splitlines() if line.strip()]
        return found if sentinels else [c for c in found if not c["order_id"].startswith(SENTINEL)]

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None and process.returncode not in (0, -9, -15):
                    raise AssertionError(f"{name} died: {(self.logs / f'{name}.log').read_text()[-3000:]}")
            if condition():
                return
            time.sleep(0.5)
        for name, process in self.processes.items():  # a stuck worker logs its threads' and tasks' stacks
            if name.startswith("worker") and process.poll() is None:
                process.send_signal(signal.SIGUSR2)
                process.send_signal(signal.SIGUSR1)
        time.sleep(2)
        logs = {n: (self.logs / f"{n}.log").read_text()[-2000:] for n in self.processes}
        raise AssertionError(f"timed out waiting for {what}; logs: {logs}")

    def query(self, sql: str) -> list[dict]:
        """Rows from the sink's ClickHouse, read as a user would: ``trackline query``.

        chDB allows one engine path per process, so the test process never opens one.
        """
        out = subprocess.run([sys.executable, "-m", "trackline", "query", "--clickhouse", self.dsn, sql],
                             capture_output=True, check=True, timeout=120)
        return orjson.loads(out.stdout)


@pytest.fixture
def broker() -> Iterator[str]:
    with EmbeddedBroker() as embedded:
        clients.create_topics(embedded.bootstrap, PARTITIONS)
        yield embedded.bootstrap


@pytest.fixture
def pipeline(broker: str, tmp_path: Path) -> Iterator[Pipeline]:
    running = Pipeline(broker, tmp_path / "data")
    yield running
    running.stop()


def produce(bootstrap: str, messages: list[tuple[str, bytes | None, bytes, list]]) -> None:
    producer = clients.producer(bootstrap)
    for topic, key, value, headers in messages:
        producer.produce(topic, key=key, value=value, headers=headers)
    assert producer.flush(30) == 0


os.environ.setdefault("PYTHONUNBUFFERED", "1")


def _keys_for_each_partition(prefix: str, count: int) -> list[str]:
    """One key per partition, as Kafka's default partitioner places them."""
    from models.routing import partition_for

    found: dict[int, str] = {}
    n = 0
    while len(found) < count:
        key = f"{prefix}{n}"
        found.setdefault(partition_for(key, count), key)
        n += 1
    return [found[p] for p in range(count)]


def settle(run: Pipeline, tag: str, timeout: float = 120) -> None:
    """Wait until everything produced so far has gone through the whole pipeline.

    A fixed sleep makes a negative check ("nothing was sent twice") pass vacuously on a slow
    machine. Instead, sentinels follow the records under test on every path they can take:
    an order for each order-events partition and each customer partition, each with a
    package on each raw-scan partition; once every sentinel scan's "out for delivery" has
    reached the notifier, every partition of every hop has processed what came before it.
    """
    from datetime import UTC, datetime, timedelta

    from models import topics

    now = datetime.now(UTC)
    orders = _keys_for_each_partition(f"SENTINEL-{tag}-O", PARTITIONS)
    customers = _keys_for_each_partition(f"SENTINEL-{tag}-C", PARTITIONS)
    trackings = _keys_for_each_partition(f"SENTINEL{tag}T", PARTITIONS)
    messages: list[tuple[str, bytes | None, bytes, list]] = []
    scans: list[tuple[str, bytes | None, bytes, list]] = []
    expected = set()
    for q, order in enumerate(orders):
        for c, customer in enumerate(customers):
            order_id = _keys_for_each_partition(f"{order}x{c}-", PARTITIONS)[q]
            placed = {"type": "order_placed", "event_id": f"{order_id}-placed", "order_id": order_id,
                      "occurred_at": now.isoformat(), "customer_id": customer, "seller_id": "SENTINEL",
                      "fulfillment_center": "SENTINEL", "service_level": "standard",
                      "promised_delivery_date": (now + timedelta(days=5)).date().isoformat(),
                      "ship_by": (now + timedelta(days=1)).isoformat(), "items": [{"sku": "S", "quantity": 1}]}
            messages.append((topics.FC_EVENTS, order_id.encode(), orjson.dumps(placed), []))
            for r, tracking in enumerate(trackings):
                number = _keys_for_each_partition(f"{tracking}{q}{c}", PARTITIONS)[r]
                shipped = {"type": "package_shipped", "event_id": f"{order_id}-{r}-shipped", "order_id": order_id,
                           "occurred_at": now.isoformat(), "package_id": f"{order_id}-P{r}",
                           "carrier": "Sentinel Post", "tracking_number": number}
                messages.append((topics.FC_EVENTS, order_id.encode(), orjson.dumps(shipped), []))
                scans.append((topics.CARRIER_SCANS_RAW, number.encode(), orjson.dumps(
                    {"carrier": "Sentinel Post", "tracking_number": number, "events": [
                        {"status": "out_for_delivery", "occurred_at": now.isoformat()}]}),
                    [(topics.SOURCE_HEADER, b"generic")]))
                expected.add(f"{order_id}-P{r}")
    produce(run.bootstrap, messages + scans)
    run.wait_for(lambda: expected <= {c["package_id"] for c in run.delivered(sentinels=True)
                                      if c["type"] == "out_for_delivery"},
                 timeout, f"sentinels {tag} through every partition")


def notifier_settled(run: Pipeline, tag: str, timeout: float = 60) -> None:
    """Wait until the notifier has processed every command produced so far: a sentinel command
    on each partition of the notifications topic, after them, must come out."""
    from models import topics

    order_ids = _keys_for_each_partition(f"{SENTINEL}{tag}-N", PARTITIONS)
    produce(run.bootstrap, [(topics.NOTIFICATIONS, order_id.encode(), orjson.dumps({
        "command_id": f"{order_id}-cmd", "type": "order_confirmed", "order_id": order_id, "customer_id": "SENTINEL",
        "channels": ["email"], "occurred_at": "2026-11-02T08:00:00Z", "caused_by_ingested_at": "2026-11-02T08:00:00Z",
        "send_after": "2026-11-02T08:00:00Z"}), []) for order_id in order_ids])
    run.wait_for(lambda: set(order_ids) <= {c["order_id"] for c in run.delivered(sentinels=True)}, timeout,
                 f"the notifier's sentinels {tag}")


def preferences_stored(run: Pipeline, customer_ids: list[str], timeout: float = 90) -> None:
    """Wait until the worker has stored these customers' preferences (its table's changelog has
    them). Preferences and commands are two topics read side by side: an order placed right after
    its customer's preferences may be decided before they are read."""
    from confluent_kafka import Consumer, TopicPartition

    changelog = "trackline-customer-preferences-changelog"  # Faust: "<app id>-<table>-changelog"

    def keys() -> set[bytes]:
        consumer = Consumer({"bootstrap.servers": run.bootstrap, "group.id": "test-read-changelog"})
        consumer.assign([TopicPartition(changelog, p, 0) for p in range(PARTITIONS)])
        found: set[bytes] = set()
        try:
            while messages := consumer.consume(1000, timeout=1.0):
                found.update(m.key() for m in messages if not m.error() and m.key())
        finally:
            consumer.close()
        return found

    wanted = {c.encode() for c in customer_ids}
    run.wait_for(lambda: wanted <= keys(), timeout, f"the preferences of {customer_ids} stored")


def sink_caught_up(run: Pipeline, timeout: float = 60) -> None:
    """Wait until the sink has committed (so inserted) everything on the history and DLQ topics."""
    from models import topics
    from sinks.clickhouse import GROUP

    wanted = [(topics.HISTORY, p) for p in range(PARTITIONS)] + [(topics.DLQ, 0)]
    committed_to_the_end(run, GROUP, wanted, timeout, "the sink to commit every history row")


def committed_to_the_end(run: Pipeline, group: str, partitions: list[tuple[str, int]], timeout: float,
                         what: str) -> None:
    """Wait until ``group`` has committed every record now on ``partitions`` (so processed them)."""
    from confluent_kafka import Consumer, TopicPartition
    from faust.types import TP

    from streams.bulk import true_end_offsets

    reader = Consumer({"bootstrap.servers": run.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        # The embedded broker reports a partition's end one record batch short: read it.
        reported = {TP(t, p): reader.get_watermark_offsets(TopicPartition(t, p), timeout=10, cached=False)[1]
                    for t, p in partitions}
        ends = true_end_offsets(run.bootstrap, reported)

        def caught_up() -> bool:
            committed = {(tp.topic, tp.partition): tp.offset for tp in reader.committed(
                [TopicPartition(t, p) for t, p in partitions], timeout=10)}
            return all(committed[(tp.topic, tp.partition)] >= end for tp, end in ends.items() if end > 0)

        run.wait_for(caught_up, timeout, what)
    finally:
        reader.close()
