"""``trackline bench``: trackline against the alternatives, side by side on one broker.

1. trackline: a fixed workload (10,000 orders, 100,000 carrier scans) through the running
   worker; events/s per worker from the first scan processed to the last notification.
2. latency: scans of fresh orders produced at half that rate; p50/p99 from a scan's
   produce time to its notification command's produce time.
3. the same 100,000 raw scans read by a naive Faust agent, a bare confluent-kafka loop and
   Quix Streams, each doing a stateful count per tracking number; rates as ratios.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition

from broker import clients
from broker.embedded import EmbeddedBroker, free_port
from models import topics
from models.settings import Settings
from trackline.bench import hops, workload

SCANS_PER_ORDER = 10
LATENCY_SECONDS = 10.0
# scans/s, beside half the measured rate (half the backlog rate, which a steady rate of
# small batches does not reach: docs/performance.md); 500 shows where the latency goal holds.
LATENCY_RATES = (500.0, 2_000.0, 5_000.0)


class TopicWatch:
    """Counts what the worker produces on one topic, with the broker's timestamps."""

    def __init__(self, bootstrap: str, partitions: int, topic: str) -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-watch-{topic}",
                                  "enable.auto.commit": False})
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        self.count = 0
        self.first_ts: float | None = None
        self.last_ts = 0.0
        self.latencies: list[float] = []
        self.tracked: list[dict] = []  # the tracked commands, with their record time (bench/hops.py)
        self.track_latency_prefix: bytes | None = None
        self.keep_ids = False  # keep every command id seen (the scaling bench compares the sets)
        self.ids: list[str] = []

    def until(self, total: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.count} of {total} messages after {timeout}s")
            self._read()

    def drain(self, seconds: float) -> None:
        """Read whatever else arrives for ``seconds``: a command produced twice shows up here."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._read()

    def close(self) -> None:
        """Before the broker stops: a consumer left open logs its refused reconnects."""
        self.consumer.close()

    def _read(self) -> None:
        for m in self.consumer.consume(10000, timeout=0.5):
            if m.error():
                continue
            self.count += 1
            ts = m.timestamp()[1] / 1000
            self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
            self.last_ts = max(self.last_ts, ts)
            if self.keep_ids:
                self.ids.append(orjson.loads(m.value())["command_id"])
            if self.track_latency_prefix and m.key().startswith(self.track_latency_prefix):
                command = orjson.loads(m.value())
                if command["type"] in hops.TRACKED:
                    caused = hops.epoch(command["caused_by_ingested_at"])
                    self.latencies.append(ts - caused)
                    self.tracked.append({**command, "_ts": ts})


def _produce(bootstrap: str, messages: list, rate: float | None = None) -> float:
    producer = clients.producer(bootstrap, **{"queue.buffering.max.messages": 1_000_000})
    started = time.perf_counter()
    for i, (topic, key, value, headers) in enumerate(messages):
        if rate and i % 100 == 0:
            ahead = i / rate - (time.perf_counter() - started)
            if ahead > 0:
                time.sleep(ahead)
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    return time.perf_counter() - started


def _worker(settings: Settings, bootstrap: str, logs: Path, web_port: int | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "trackline", "worker", "--kafka", bootstrap, "--data-dir", str(settings.data_dir),
         "--partitions", str(settings.partitions), "--web-port", str(web_port or free_port()), "--log-level", "warn"],
        stdout=open(logs / "worker.log", "ab"), stderr=subprocess.STDOUT,
        # Counted against the one-process oracle: no learned model (models.settings.own_estimate).
        env={**os.environ, "TRACKLINE_OWN_ESTIMATE": "false"})


def _stage_seconds(port: int, timeout: float = 60) -> dict[str, float]:
    """The worker's ``trackline_stage_seconds_total`` by stage, from its /metrics (waits for it to answer)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                text = response.read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    return {sample.labels["stage"]: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == "trackline_stage_seconds_total"}


def breakdown(before: dict[str, float], after: dict[str, float], scans: int, worker_cpu: float) -> dict[str, float]:
    """Microseconds per scan in each stage, and what the CPU stages do not account for of the
    worker's CPU time (fetching, Faust's stream machinery, the event loop, handing records to the
    producer). ``produce`` and ``flush_wait`` are wall time, mostly waiting: left out of the sum."""
    from trackline.metrics import STAGES

    per_scan = {stage: 1e6 * (after.get(stage, 0.0) - before.get(stage, 0.0)) / scans for stage in STAGES}
    counted = sum(us for stage, us in per_scan.items() if stage not in ("produce", "flush_wait"))
    per_scan["other_cpu"] = max(0.0, 1e6 * worker_cpu / scans - counted)
    return {stage: round(us, 1) for stage, us in per_scan.items()}


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# Commands per benchmark order: confirmed, estimate set and shipped once its shipment is
# announced; out for delivery and delivered after its scans.
ANNOUNCED = 3
JOURNEY = 5


def bench_trackline(settings: Settings, bootstrap: str, orders: int, scans: int, logs: Path,
                    latency_rate: float | None = None, broker_pid: int | None = None,
                    full_history: bool = True, latency: bool = True) -> dict:
    per_order = max(SCANS_PER_ORDER, -(-scans // orders))
    notify = TopicWatch(bootstrap, settings.partitions, topics.NOTIFICATIONS)
    notify.keep_ids = True  # the oracle: each order's five commands, once each
    worker = _worker(settings, bootstrap, logs)
    _produce(bootstrap, workload.order_messages(0, orders))
    notify.until(ANNOUNCED * orders, 300)  # every tracking number is announced
    _stop(worker)  # the scans wait in Kafka, so the worker is measured alone on its CPU
    _produce(bootstrap, workload.scan_messages(0, orders, per_order, seed=42, full_history=full_history))
    routed = TopicWatch(bootstrap, settings.partitions, topics.ORDER_EVENTS)
    port = free_port()
    worker = _worker(settings, bootstrap, logs, port)
    # CPU sampled from the start: it is read for the rate's window only (below).
    worker_cpu_samples = CpuSampler(worker.pid)
    broker_cpu_samples = CpuSampler(broker_pid) if broker_pid else None
    notify.first_ts = None
    # From the worker's first answer on /metrics (its start-up done): its stage counters.
    stages_before = _stage_seconds(port)
    notify.until(JOURNEY * orders, 900)
    stages_after = _stage_seconds(port)
    notify.drain(3.0)
    routed.until(1, 60)
    assert routed.first_ts is not None  # until(1, ...) returned: it read a message
    seconds = notify.last_ts - routed.first_ts
    # CPU over the window the rate is measured on: first scan routed to last command.
    worker_cpu_samples.stop()
    worker_cpu = worker_cpu_samples.between(routed.first_ts, notify.last_ts)
    broker_cpu = None
    if broker_cpu_samples:
        broker_cpu_samples.stop()
        broker_cpu = broker_cpu_samples.between(routed.first_ts, notify.last_ts)
    events = orders * per_order
    result: dict = {"events": events, "seconds": seconds,
              # Each webhook adds one new scan; with histories it repeats the older ones too.
              "new_scans": events,
              "tracking_details": orders * (per_order * (per_order + 1) // 2 if full_history else per_order),
              "us_per_scan": breakdown(stages_before, stages_after, events, worker_cpu),
              # Cores busy from the first scan routed to the last command (CPU seconds over
              # that window / its seconds, Linux /proc, every thread of the process).
              "worker_cpu_seconds": round(worker_cpu, 2),
              "worker_cores": round(worker_cpu / seconds, 2),
              "broker_cores": round(broker_cpu / seconds, 2) if broker_cpu is not None else None,
              # Every command the journeys call for, none twice: the count above is the oracle's set.
              "commands_exact": len(notify.ids) == len(set(notify.ids)) == JOURNEY * orders}
    if not latency:
        _stop(worker)
        return result

    # Latency on fresh orders at half the measured rate and at fixed rates (above what one worker
    # sustains, the backlog shows as latency). The workload's journeys are the same, scans
    # produced at the rate for LATENCY_SECONDS each.
    rates = [latency_rate] if latency_rate else [events / seconds / 2, *LATENCY_RATES]
    done = orders
    result["latency"] = []
    hop_reader = hops.Hops(bootstrap, settings.partitions)
    for step, rate in enumerate(rates):
        fresh = max(100, int(rate * LATENCY_SECONDS / per_order))
        prefix = f"L{step}"
        _produce(bootstrap, workload.order_messages(done, fresh, prefix=prefix))
        notify.until(JOURNEY * done + ANNOUNCED * fresh, 300)
        notify.track_latency_prefix = f"ORD-{prefix}".encode()
        notify.latencies, notify.tracked = [], []
        hop_reader.mark()
        _produce(bootstrap, workload.scan_messages(done, fresh, per_order, seed=43 + step, prefix=prefix,
                                                   full_history=full_history), rate=rate)
        done += fresh
        notify.until(JOURNEY * done, 600)
        latencies = sorted(notify.latencies)
        point: dict[str, Any] = {"rate": rate, "p50_ms": 1000 * latencies[len(latencies) // 2],
                 "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)]}
        # Where it went: the router, order and policy hops (p50, p99), read after the point.
        for hop, seconds_each in hop_reader.split(notify.tracked, f"ORD-{prefix}").items():
            ordered = sorted(seconds_each)
            if ordered:
                point[f"{hop}_ms"] = (1000 * ordered[len(ordered) // 2], 1000 * ordered[int(len(ordered) * 0.99)])
        result["latency"].append(point)
    hop_reader.close()
    _stop(worker)
    # The first point, half the measured rate, is the headline figure.
    result.update(latency_rate=rates[0], p50_ms=result["latency"][0]["p50_ms"], p99_ms=result["latency"][0]["p99_ms"])
    return result


SCALING_ORDERS = 5_000  # 50,000 scans: some 20 s for one worker, long enough to compare
STATE_HISTORIES, ORDERS_PER_DAY = (100, 150, 200), 100


def bench_state_size(settings: Settings, workdir: Path, logs: Path) -> dict:
    """Histories of different lengths at one order rate: with retention the stores end the same
    size (bench/state_size.py)."""
    from trackline.bench import state_size

    print(f"state size: histories of {', '.join(map(str, STATE_HISTORIES))} days ending now, {ORDERS_PER_DAY} orders "
          f"a day, retention as configured (config/detection.toml); local RocksDB stores (the embedded broker, "
          f"memory-only, never compacts)", flush=True)
    return state_size.run(STATE_HISTORIES, ORDERS_PER_DAY, settings.partitions, workdir, logs)


def bench_recovery(settings: Settings, workdir: Path, logs: Path, orders: int) -> dict:
    """A fresh node and a warm restart with ``orders`` stored orders (bench/recovery.py)."""
    from trackline.bench import recovery

    print(f"recovery: seeding the orders changelog with {orders:,} orders (embedded Tansu, memory-only)", flush=True)
    result = recovery.run(orders, settings.partitions, workdir, logs)
    print(f"  fresh node (empty disk: full restore and deadline-index rebuild): first event after "
          f"{result['fresh_node_seconds']:.1f} s; warm restart (own RocksDB, {result['warm_tail_orders']:,} orders "
          f"of changelog tail): {result['warm_restart_seconds']:.1f} s; {result['stored_bytes_per_order']:,} bytes "
          f"per stored order", flush=True)
    return result


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a process has used so far, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuSampler:
    """A process's CPU seconds sampled against wall-clock time, so its CPU can be read for the
    exact window the event rate is measured over (first scan routed to last command, broker
    timestamps), not from its start-up on: the group join and restore before the first scan
    are mostly idle and would make it look cheaper per event."""

    INTERVAL = 0.05

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float]] = [(time.time(), _cpu_seconds(pid))]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(self.INTERVAL):
            try:
                self.samples.append((time.time(), _cpu_seconds(self.pid)))
            except OSError:  # the process has ended
                return

    def stop(self) -> None:
        self.done.set()
        self.thread.join()

    def at(self, when: float) -> float:
        """CPU seconds used by ``when`` (epoch seconds), interpolated between samples."""
        before = max((s for s in self.samples if s[0] <= when), default=self.samples[0])
        after = min((s for s in self.samples if s[0] >= when), default=self.samples[-1])
        if after[0] <= before[0]:
            return before[1]
        return before[1] + (after[1] - before[1]) * (when - before[0]) / (after[0] - before[0])

    def between(self, start: float, end: float) -> float:
        return self.at(end) - self.at(start)


def bench_scaling(settings: Settings, workdir: Path, logs: Path, counts: tuple[int, ...] = (1, 2, 3)) -> dict:
    """1, 2 and 3 worker processes on the same data, each count on a fresh embedded broker:
    events/s from the first scan routed to the last notification, the command ids produced
    (the same set whatever the count), and the CPU the workers and the broker used meanwhile
    (what limits a second process on a small machine)."""
    results: dict[str, dict] = {}
    per_order = SCANS_PER_ORDER
    reference: set[str] | None = None
    for count in counts:
        with EmbeddedBroker(log_path=logs / f"broker-scaling-{count}.log") as broker:
            clients.create_topics(broker.bootstrap, settings.partitions)
            notify = TopicWatch(broker.bootstrap, settings.partitions, topics.NOTIFICATIONS)
            notify.keep_ids = True
            workers = [_worker(settings.model_copy(update={"data_dir": workdir / f"scaling-{count}-{n}"}),
                               broker.bootstrap, logs) for n in range(count)]
            samplers = [CpuSampler(pid) for pid in [w.pid for w in workers] + [broker.pid]]
            routed: TopicWatch | None = None
            try:
                _produce(broker.bootstrap, workload.order_messages(0, SCALING_ORDERS))
                notify.until(ANNOUNCED * SCALING_ORDERS, 300)
                routed = TopicWatch(broker.bootstrap, settings.partitions, topics.ORDER_EVENTS)
                notify.first_ts = None
                _produce(broker.bootstrap, workload.scan_messages(0, SCALING_ORDERS, per_order, seed=42))
                notify.until(JOURNEY * SCALING_ORDERS, 900)
                routed.until(1, 60)
                assert routed.first_ts is not None  # routed.until(1, ...) returned: it read a message
                # Over the window the rate is measured on, as the main line does (CpuSampler).
                cpu = [sampler.between(routed.first_ts, notify.last_ts) for sampler in samplers]
            finally:
                for sampler in samplers:
                    sampler.stop()
                for worker in workers:
                    _stop(worker)
                notify.close()
                if routed is not None:
                    routed.close()
            ids = set(notify.ids)
            reference = ids if reference is None else reference
            seconds = notify.last_ts - routed.first_ts
            results[f"{count} worker{'s' if count > 1 else ''}"] = {
                "events": SCALING_ORDERS * per_order, "seconds": seconds,
                "commands": len(ids), "same_commands_as_one_worker": ids == reference,
                # CPU seconds from the first scan routed to the last command: cores busy = CPU s / s
                "workers_cpu_seconds": round(sum(cpu[:-1]), 1), "broker_cpu_seconds": round(cpu[-1], 1)}
        name = f"{count} worker{'s' if count > 1 else ''}"
        result = results[name]
        print(f"  {name:<16} {_rate(result):>10,.0f} events/s, {result['commands']:,} commands, "
              f"same set as one worker: {result['same_commands_as_one_worker']}; CPU s: workers "
              f"{result['workers_cpu_seconds']}, broker {result['broker_cpu_seconds']} "
              f"over {seconds:.1f} s", flush=True)
    return results


def bench_bare_confluent(bootstrap: str, expected: int) -> dict:
    consumer = clients.consumer(bootstrap, "bench-bare-confluent")
    consumer.subscribe([topics.CARRIER_SCANS_RAW])
    counts: dict[str, int] = {}
    seen, first = 0, 0.0
    while seen < expected:
        for m in consumer.consume(10000, timeout=1.0):
            if m.error():
                continue
            if not seen:
                first = time.perf_counter()
            code = orjson.loads(m.value())["result"]["tracking_code"]
            counts[code] = counts.get(code, 0) + 1
            seen += 1
            if seen == expected:
                break
    seconds = time.perf_counter() - first
    consumer.close()
    return {"events": expected, "seconds": seconds}


def bench_subprocess(module: str, args: list[str], out: Path, logs: Path, timeout: float = 600) -> dict:
    process = subprocess.Popen([sys.executable, "-m", module, *args],
                               stdout=open(logs / f"{module.rsplit('.', 1)[-1]}.log", "ab"),
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    try:
        while not out.exists():
            if process.poll() is not None:
                raise RuntimeError(f"{module} exited with {process.returncode}; see {logs}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{module} did not finish in {timeout}s")
            time.sleep(0.5)
        time.sleep(0.2)
        return json.loads(out.read_text())
    finally:
        if process.poll() is None:
            _stop(process)


def run_bench(settings: Settings, scans: int, orders: int, only: list[str] | None = None,
              latency_rate: float | None = None, recovery_orders: int = 1_000_000) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="trackline-bench-"))
    logs = workdir / "logs"
    logs.mkdir()
    settings = settings.model_copy(update={"data_dir": workdir})
    wanted = set(only or ["trackline", "trackline-single", "naive-faust", "bare-confluent", "quix", "sink", "ingest",
                          "deadlines", "scaling", "recovery", "state-size"])
    if wanted <= {"deadlines", "scaling", "recovery", "state-size"}:  # no shared broker: these start their own
        results: dict[str, dict] = {}
        if "state-size" in wanted:
            results["state-size"] = bench_state_size(settings, workdir, logs)
        if "recovery" in wanted:
            results["recovery"] = bench_recovery(settings, workdir, logs, recovery_orders)
        if "scaling" in wanted:
            print(f"trackline bench: worker scaling, {SCALING_ORDERS:,} orders and "
                  f"{SCALING_ORDERS * SCANS_PER_ORDER:,} scans, {settings.partitions} partitions, embedded Tansu "
                  f"(memory-only) per run; work dir {workdir}", flush=True)
            results["scaling"] = bench_scaling(settings, workdir, logs)
        if "deadlines" in wanted:
            results["deadlines"] = bench_deadlines(workdir, logs)
        (workdir / "results.json").write_text(json.dumps(results, indent=2))
        return 0
    broker = EmbeddedBroker(log_path=logs / "broker.log").start() if settings.embedded_broker else None
    bootstrap = broker.bootstrap if broker else settings.kafka
    results = {}
    try:
        clients.create_topics(bootstrap, settings.partitions)
        print(f"trackline bench: {orders:,} orders, {scans:,} carrier scans, {settings.partitions} partitions, "
              f"broker {'embedded Tansu (memory-only)' if broker else bootstrap}; work dir {workdir}", flush=True)
        if "trackline" in wanted:
            results["trackline"] = bench_trackline(settings, bootstrap, orders, scans, logs, latency_rate,
                                                   broker.pid if broker else None)
            _line("trackline", results)
            _stages(results["trackline"])
        if "trackline-single" in wanted and broker:
            # The older workload (each webhook its one new scan) on a broker of its own, for comparison.
            name = "trackline, 1-scan webhooks"
            with EmbeddedBroker(log_path=logs / "broker-single.log") as single:
                clients.create_topics(single.bootstrap, settings.partitions)
                results[name] = bench_trackline(settings.model_copy(update={"data_dir": workdir / "single"}),
                                                single.bootstrap, orders, scans, logs, broker_pid=single.pid,
                                                full_history=False, latency=False)
            _line(name, results)
            _stages(results[name])
        elif wanted & {"bare-confluent", "quix", "naive-faust"}:  # their input, without trackline's run
            _produce(bootstrap, workload.scan_messages(0, orders, max(SCANS_PER_ORDER, -(-scans // orders)), 42))
        expected = scans
        if "bare-confluent" in wanted:
            results["bare-confluent"] = bench_bare_confluent(bootstrap, expected)
            _line("bare-confluent", results)
        if "quix" in wanted:
            results["quix"] = bench_subprocess("trackline.bench.quix", [
                bootstrap, str(expected), str(workdir / "quix.json"), str(workdir / "quix-state")],
                workdir / "quix.json", logs)
            _line("quix", results)
        # Before the sink and ingest passes: the ingest pass adds its own webhooks to the raw-scan
        # topic, which the naive agent's Record type cannot all decode.
        if "naive-faust" in wanted:
            results["naive-faust"] = bench_subprocess("trackline.bench.naive_faust", [
                bootstrap, str(expected), str(workdir / "naive.json"), str(workdir / "naive-faust"),
                str(settings.partitions)], workdir / "naive.json", logs)
            _line("naive-faust", results)
        if "sink" in wanted:
            results["sink"] = bench_sink(bootstrap, workdir, logs)
        if "ingest" in wanted:
            results["ingest"] = bench_ingest(bootstrap, workdir, logs)
    finally:
        if broker:
            broker.stop()
    _summary(results, settings)
    if "recovery" in wanted:
        results["recovery"] = bench_recovery(settings, workdir, logs, recovery_orders)
    if "state-size" in wanted:
        results["state-size"] = bench_state_size(settings, workdir, logs)
    if "scaling" in wanted:
        print("worker scaling (each count on its own embedded broker, same data):", flush=True)
        results["scaling"] = bench_scaling(settings, workdir, logs)
    if "deadlines" in wanted:
        results["deadlines"] = bench_deadlines(workdir, logs)
    (workdir / "results.json").write_text(json.dumps(results, indent=2))
    return 0


SINK_ROWS = 300_000
SINK_LAG_RATE = 20_000.0


def bench_sink(bootstrap: str, workdir: Path, logs: Path) -> dict:
    """The ClickHouse sink alone (bench/sink.py): rows/s with the views, and history lag."""
    out = workdir / "sink.json"
    subprocess.run([sys.executable, "-m", "trackline.bench.sink", bootstrap, str(SINK_ROWS), str(SINK_LAG_RATE),
                    str(workdir / "sink"), str(out)], check=True, stdout=open(logs / "sink.log", "ab"),
                   stderr=subprocess.STDOUT, timeout=900)
    r = json.loads(out.read_text())
    print(f"  {'sink':<16} {r['rows_per_second']:>10,.0f} rows/s into ClickHouse (chDB, with the typed tables' "
          f"views); history lag at {r['lag_rate']:,.0f} rows/s: p50 {r['lag_p50_ms']:,.0f} ms, "
          f"p99 {r['lag_p99_ms']:,.0f} ms; a bare clickhouse-connect insert of the same rows "
          f"{r['bare_insert_rows_per_second']:,.0f} rows/s (sink at "
          f"{r['rows_per_second'] / r['bare_insert_rows_per_second']:.2f}x of it)", flush=True)
    batches = r["lag_phase_batch_seconds"]
    print(f"  {'':<16} the sink's batches in the lag phase took p50 <= {batches['p50']:g} s, "
          f"p99 <= {batches['p99']:g} s, max <= {batches['max']:g} s (histogram bucket bounds)", flush=True)
    return r


INGEST_REQUESTS = 20_000


def bench_ingest(bootstrap: str, workdir: Path, logs: Path) -> dict:
    """One ``trackline ingest`` process (bench/ingest.py): signed webhooks accepted per second."""
    out = workdir / "ingest.json"
    subprocess.run([sys.executable, "-m", "trackline.bench.ingest", bootstrap, str(INGEST_REQUESTS), str(out)],
                   check=True, stdout=open(logs / "ingest.log", "ab"), stderr=subprocess.STDOUT, timeout=900)
    r = json.loads(out.read_text())
    print(f"  {'ingest':<16} {r['accepted_per_second']:>10,.0f} signed webhooks/s accepted end to end by one process "
          f"(verified, on the broker, 202; {r['body_bytes']:,}-byte EasyPost bodies, {r['concurrency']} connections, "
          f"the load generator on the same cores); forged ones refused at {r['forged_per_second']:,.0f}/s; "
          f"answers {r['answers']}", flush=True)
    return r


def bench_deadlines(workdir: Path, logs: Path) -> dict:
    """Timer cost per tick and worker RSS at 10k, 100k and 1M open shipments (bench/deadlines.py)."""
    print("\ntime-driven detection: deadline timer with the orders table in rocksdb, one process per size")
    print(f"{'open shipments':>15}{'due/tick':>10}{'tick p50 ms':>13}{'100 due ms':>12}{'core %':>9}"
          f"{'late max s':>11}{'rebuild s':>11}{'RSS MB':>9}{'store MB':>10}")
    sizes = {}
    for n in (10_000, 100_000, 1_000_000):
        out = workdir / f"deadlines-{n}.json"
        subprocess.run([sys.executable, "-m", "trackline.bench.deadlines", str(n), str(workdir / f"deadlines-{n}"),
                        str(out)], check=True, stdout=open(logs / "deadlines.log", "ab"), stderr=subprocess.STDOUT)
        r = sizes[n] = json.loads(out.read_text())
        print(f"{n:>15,}{r['due_per_tick']:>10.1f}{r['tick_ms_p50']:>13.3f}{r['tick_ms_with_100_due']:>12.3f}"
              f"{r['core_share_percent']:>9.4f}{r['detection_after_deadline_s_max']:>11}"
              f"{r['rebuild_seconds']:>11.1f}{r['rss_mb']:>9.0f}{r['store_mb']:>10.0f}", flush=True)
    print("tick: the timer's work every 5 s (pop due orders, build their ClockTicks); core % at 5 s ticks; "
          "late max: deadline to tick, at most one tick interval; rebuild: index from rocksdb after a rebalance")
    return sizes


def _rate(result: dict) -> float:
    return result["events"] / result["seconds"]


def _per_core(result: dict) -> float | None:
    """Events per CPU second of the contender's own process: events/s per core it kept busy."""
    cpu = result.get("worker_cpu_seconds", result.get("cpu_seconds"))
    return result["events"] / cpu if cpu else None


def _stages(result: dict) -> None:
    print(f"  {result['new_scans'] / result['seconds']:,.0f} new canonical scans/s "
          f"({result['new_scans']:,} new scans in {result['tracking_details']:,} tracking details)", flush=True)
    stages = result["us_per_scan"]
    print("  per scan, us: " + ", ".join(f"{stage} {us:g}" for stage, us in stages.items())
          + " (CPU time of the worker's event loop thread, except produce and flush_wait: wall time, mostly "
            "waiting; other_cpu: the worker's CPU the stages do not cover, such as Faust's and aiokafka's own "
            "work and the consumer thread)", flush=True)
    print(f"  cores busy from the first scan routed to the last command: worker {result['worker_cores']}, "
          f"broker {result['broker_cores']} (broker not counted as trackline's); worker CPU per event "
          f"{1e6 * result['worker_cpu_seconds'] / result['events']:,.0f} us", flush=True)


def _line(name: str, results: dict) -> None:
    print(f"  {name:<16} {_rate(results[name]):>10,.0f} events/s", flush=True)


def _summary(results: dict, settings: Settings) -> None:
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; broker and contenders on the same machine")
    base = results.get("trackline")
    print("events: input webhook records (each carries a package's history so far, except the 1-scan line)")
    print(f"{'contender':<28}{'events/s':>12}{'ratio to trackline':>22}")
    for name, result in results.items():
        if "events" not in result:
            continue
        ratio = f"{_rate(result) / _rate(base):.2f}x" if base else "-"
        print(f"{name:<28}{_rate(result):>12,.0f}{ratio:>22}")
    if base:
        per_core = _per_core(base)
        if per_core:
            quix = results.get("quix")
            against = ""
            quix_per_core = _per_core(quix) if quix else None
            if quix and quix_per_core:
                against = (f"; Quix Streams' count: {quix_per_core:,.0f} events per CPU second "
                           f"({quix['cpu_seconds'] / quix['seconds']:.2f} cores busy), "
                           f"{quix_per_core / per_core:.1f}x trackline's")
            print(f"trackline per core used: {per_core:,.0f} events per CPU second of the worker "
                  f"({base['worker_cores']} cores busy; the broker, {base.get('broker_cores')} cores, "
                  f"is not counted){against}")
        for point in base.get("latency", []):
            split = ", ".join(f"{hop} {point[f'{hop}_ms'][0]:,.0f} / {point[f'{hop}_ms'][1]:,.0f}"
                              for hop in ("router", "order", "policy") if f"{hop}_ms" in point)
            print(f"trackline latency at {point['rate']:,.0f} scans/s: p50 {point['p50_ms']:,.0f} ms, "
                  f"p99 {point['p99_ms']:,.0f} ms (scan produced -> command produced)"
                  + (f"; by hop, p50 / p99 ms: {split}" if split else ""))
        print(f"commands exactly the oracle's set (each order's {JOURNEY}, none twice): "
              f"{base.get('commands_exact')}")
