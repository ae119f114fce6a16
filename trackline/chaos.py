"""``make chaos``: every fault a deployment meets, over a seeded workload, counted against an oracle.

The run starts the embedded broker (memory-only) behind a TCP proxy it advertises, so every
client's connection can be cut; a worker, the sink (chDB) and the notifier as their own
processes; and a loopback push endpoint standing in for the shop's notification provider, which
keeps every request with its idempotency key.

The workload is the simulator's steady mix (no malformed input: the dead-letter count must stay
zero), every customer asking for push. Each message is produced with its event time as the
broker timestamp, which the pipeline reads as its ingest time, so the oracle
(``trackline.oracle``, the pure core applied in produce order) knows exactly which commands
and history rows a fault-free run yields, whenever the run reads them. The journeys' deadlines
are hours away in event time while a run lasts minutes, so no deadline falls inside a fault:
none can fire early or late because of one.

The workload is cut into phases, one per fault. Each phase's traffic is produced at its own
pace, the fault strikes during it, and the run waits until the pipeline has caught up: every
command expected so far at the receiver and the sink's lag zero. A supervisor restarts what a
failpoint killed, as systemd or Kubernetes would. At the end the receiver, the notifications
topic and ClickHouse (with and without ``FINAL``) are compared with the oracle.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from broker import clients
from broker.embedded import EmbeddedBroker, free_port
from broker.proxy import BrokerProxy
from models import topics
from models.preferences import CustomerPreferences
from trackline.demo_receivers import LoopbackWebhooks
from trackline.oracle import expected
from trackline.simulator import Outgoing, TrafficMix, TrafficSimulator

PARTITIONS = 3
SECRET = "chaos-push-secret-0123456789"
# Clean input: what the run counts is loss and repetition, not bad records.
CLEAN = TrafficMix(trouble=0, preferences=0, late_feed=0, unannounced=0, old_burst_journeys=0,
                   malformed=0, type_confused=0)
SINK_GROUP = "trackline-sink"


@dataclass
class Plan:
    faults: list[str]
    phase_seconds: float  # of traffic per fault
    orders_per_second: float
    outage_seconds: float  # ClickHouse unavailable
    drop_seconds: float  # broker connections refused
    random_kills: int  # kill -9 of a random process, on top, per phase
    catch_up_timeout: float = 240.0


FAULTS = ["worker_kill", "worker_kill_after_send", "scale_1_3_1", "clickhouse_outage",
          "notifier_kill_after_send", "sink_kill_after_insert", "broker_drop"]
SHORT = Plan(FAULTS, phase_seconds=10, orders_per_second=4, outage_seconds=5, drop_seconds=5, random_kills=0)
LONG = Plan(FAULTS * 3, phase_seconds=25, orders_per_second=6, outage_seconds=30, drop_seconds=15, random_kills=1)


class Cluster:
    """trackline's processes on one broker, each restartable, logs under ``dir/logs``."""

    def __init__(self, bootstrap: str, directory: Path, push_url: str) -> None:
        self.bootstrap = bootstrap
        self.dir = directory
        self.logs = directory / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "TRACKLINE_PUSH_URL": push_url,
                    "TRACKLINE_NOTIFIER_HTTP_SECRET": SECRET, "TRACKLINE_FAILPOINTS": "",
                    # Compared with a one-process oracle: no learned model (models.settings).
                    "TRACKLINE_OWN_ESTIMATE": "false"}
        self.restarts: Counter[str] = Counter()  # by the supervisor, after a failpoint or a crash
        self.stopped: set[str] = set()  # stopped on purpose: not restarted

    def start(self, name: str, failpoints: str = "") -> None:
        command = name.split("-")[0]
        extra: list[str] = []
        if command == "worker":
            self.ports.setdefault(name, free_port())
            extra = ["--web-port", str(self.ports[name])]
        data = self.dir / name if command == "worker" else self.dir
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "trackline", command, "--kafka", self.bootstrap, "--data-dir", str(data),
             "--partitions", str(PARTITIONS), "--log-level", "info", *extra],
            stdout=open(self.logs / f"{name}.log", "ab"), stderr=subprocess.STDOUT,
            env={**self.env, "TRACKLINE_FAILPOINTS": failpoints})
        self.stopped.discard(name)

    def kill(self, name: str) -> None:
        """kill -9: no shutdown, no final commit."""
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
        self.stopped.add(name)

    def stop(self, name: str) -> None:
        self.stopped.add(name)
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def supervise(self) -> None:
        """Restart, without failpoints, what exited on its own (a failpoint's kill, a crash)."""
        for name, process in list(self.processes.items()):
            if name not in self.stopped and process.poll() is not None:
                self.restarts[name] += 1
                self.start(name)

    def alive(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.poll() is None


def _timestamp(simulator: TrafficSimulator, message: Outgoing) -> datetime:
    return simulator.start + timedelta(seconds=message.due)


class Receiver:
    """The loopback push endpoint's log, read as the provider would: by idempotency key."""

    def __init__(self, endpoint: LoopbackWebhooks) -> None:
        self.endpoint = endpoint
        self._read: list[tuple[str, str]] = []  # parsed so far: the catch-up check asks often

    def arrivals(self) -> list[tuple[str, str]]:
        """(command id, idempotency key) of every request taken, repeats included."""
        taken = self.endpoint.taken[len(self._read):]  # the endpoint only appends
        self._read.extend((orjson.loads(body)["command_id"], key) for key, body in taken)
        return list(self._read)

    def command_ids(self) -> set[str]:
        return {command_id for command_id, _ in self.arrivals()}


def committed_lag(bootstrap: str, group: str, topic_names: list[str]) -> int:
    """Records of ``topic_names`` that ``group`` has not committed yet."""
    committed = clients.committed_offsets(bootstrap, group)
    consumer = clients.consumer(bootstrap, f"chaos-lag-{os.getpid()}", log_level=0)
    try:
        metadata = consumer.list_topics(timeout=10).topics
        return clients.unread(consumer, committed, [(name, partition) for name in topic_names
                                                    for partition in metadata[name].partitions])  # the DLQ has one
    finally:
        consumer.close()


def topic_counts(bootstrap: str, topic: str, field_name: str) -> Counter[str]:
    """How often each value of ``field_name`` appears on ``topic``, from the start."""
    return Counter(record.get(field_name, "") for record in clients.read_topic(bootstrap, topic, PARTITIONS))


@dataclass
class Phase:
    fault: str
    messages: list[Outgoing]
    commands: set[str] = field(default_factory=set)  # first expected after this phase's messages
    history: set[str] = field(default_factory=set)
    struck_at: float = 0.0
    caught_up_seconds: float | None = None
    notes: list[str] = field(default_factory=list)


class ChaosRun:
    def __init__(self, plan: Plan, directory: Path, seed: int = 5,
                 log: Callable[[str], None] = lambda line: print(line, flush=True)) -> None:
        self.plan, self.dir, self.seed, self.log = plan, directory, seed, log
        self.random = random.Random(seed)

    def run(self) -> dict[str, Any]:
        self.dir.mkdir(parents=True, exist_ok=True)
        proxy_port = free_port()
        with EmbeddedBroker(log_path=self.dir / "broker.log", advertised_port=proxy_port) as broker:
            proxy = BrokerProxy(proxy_port, broker.port).start()
            endpoint = LoopbackWebhooks(self.dir / "push-received.jsonl", SECRET).start()
            try:
                return self._run(f"127.0.0.1:{proxy_port}", proxy, endpoint)
            finally:
                endpoint.stop()
                proxy.stop()

    def _run(self, bootstrap: str, proxy: BrokerProxy, endpoint: LoopbackWebhooks) -> dict[str, Any]:
        plan = self.plan
        clients.create_topics(bootstrap, PARTITIONS)
        simulator = TrafficSimulator(seed=self.seed, mix=CLEAN)
        traffic = list(simulator.stream(plan.orders_per_second, plan.phase_seconds * len(plan.faults)))
        customers = sorted({orjson.loads(m.value)["customer_id"] for m in traffic
                            if m.topic == topics.FC_EVENTS and b'"order_placed"' in m.value})
        preferences = {c: CustomerPreferences(customer_id=c, channels=["push"]) for c in customers}
        stamp = lambda m: _timestamp(simulator, m)  # noqa: E731
        last = len(plan.faults) - 1  # the last phase takes the journeys' tails too
        phases = [Phase(fault, [m for m in traffic if i * plan.phase_seconds <= m.due
                                and (i == last or m.due < (i + 1) * plan.phase_seconds)])
                  for i, fault in enumerate(plan.faults)]
        seen_commands: set[str] = set()
        seen_history: set[str] = set()
        produced: list[Outgoing] = []
        for phase in phases:  # what each phase adds to the oracle's answer
            produced += phase.messages
            answer = expected(produced, preferences, delivered=True, received_at=stamp)
            phase.commands = set(answer.addressed) - seen_commands
            phase.history = answer.history - seen_history
            seen_commands |= phase.commands
            seen_history |= phase.history
        oracle = expected(traffic, preferences, delivered=True, received_at=stamp)
        receiver = Receiver(endpoint)

        # Quiet: the dropped connections are the point of the run, not news (the processes' logs have them).
        producer = clients.producer(bootstrap, log_level=0)
        for customer, prefs in preferences.items():
            producer.produce(topics.CUSTOMER_PREFERENCES, key=customer.encode(), value=prefs.model_dump_json().encode())
        _flush(producer)
        cluster = Cluster(bootstrap, self.dir, f"{endpoint.url}/push")
        for name in ("worker", "sink", "notifier"):
            cluster.start(name)
        self.log(f"chaos: {len(traffic)} messages, {len(oracle.addressed)} commands and {len(oracle.history)} "
                 f"history rows expected, {len(phases)} faults; logs in {cluster.logs}")
        expected_so_far: set[str] = set()
        started = time.monotonic()
        for phase in phases:
            expected_so_far |= phase.commands
            strike = self._fault(phase, cluster, proxy)
            self._produce(producer, phase, simulator, cluster, strike)
            self._catch_up(phase, cluster, receiver, expected_so_far, bootstrap)
            self.log(f"  {phase.fault}: {len(phase.messages)} events in, caught up "
                     f"{_seconds(phase.caught_up_seconds)} after the fault {'; '.join(phase.notes)}")
        self._settle(cluster, bootstrap)
        for name in list(cluster.processes):
            cluster.stop(name)
        report = self._report(phases, oracle.addressed.keys(), receiver, bootstrap, cluster)
        report["seconds"] = round(time.monotonic() - started, 1)
        report["broker"] = "embedded Tansu, memory-only, behind a TCP proxy"
        return report

    # -- faults ------------------------------------------------------------------------------

    def _fault(self, phase: Phase, cluster: Cluster, proxy: BrokerProxy) -> Callable[[], None]:
        """Prepare ``phase``'s fault; returns what strikes it a third into the phase's traffic."""
        plan = self.plan

        def mark(note: str) -> None:
            phase.struck_at = time.monotonic()
            phase.notes.append(note)

        # A process restarted with a failpoint armed: it dies (or ClickHouse fails) in that window.
        restarted_with = {
            "worker_kill_after_send": ("worker", "kill_after_send@3"),
            "clickhouse_outage": ("sink", f"clickhouse_unavailable:{plan.outage_seconds:g}s"),
            "notifier_kill_after_send": ("notifier", "notifier_kill_after_send@20"),
            "sink_kill_after_insert": ("sink", "sink_kill_after_insert@2"),
        }
        if phase.fault in restarted_with:
            name, failpoint = restarted_with[phase.fault]

            def strike() -> None:
                mark(f"{name} restarted with failpoint {failpoint}")
                cluster.stop(name)
                cluster.start(name, failpoint)
        elif phase.fault == "worker_kill":
            def strike() -> None:
                mark("kill -9 worker")
                cluster.kill("worker")
                time.sleep(1)
                cluster.start("worker")
        elif phase.fault == "scale_1_3_1":
            def strike() -> None:
                mark("workers 1 -> 3")
                cluster.start("worker-2")
                cluster.start("worker-3")
                time.sleep(plan.phase_seconds / 3)
                phase.notes.append("3 -> 1")
                cluster.stop("worker-2")
                cluster.stop("worker-3")
        elif phase.fault == "broker_drop":
            def strike() -> None:
                mark(f"broker connections dropped, refused {plan.drop_seconds:g}s")
                proxy.drop(plan.drop_seconds)
        else:
            raise ValueError(f"unknown fault {phase.fault!r}")
        return strike

    def _random_kill(self, phase: Phase, cluster: Cluster) -> None:
        name = self.random.choice([n for n in ("worker", "sink", "notifier") if cluster.alive(n)] or ["worker"])
        phase.notes.append(f"random kill -9 {name}")
        cluster.kill(name)
        time.sleep(self.random.uniform(0.2, 2))
        cluster.start(name)

    def _produce(self, producer: Any, phase: Phase, simulator: TrafficSimulator, cluster: Cluster,
                 strike: Callable[[], None]) -> None:
        """The phase's messages at their pace, the fault a third of the way in."""
        if not phase.messages:
            strike()
            return
        first = phase.messages[0].due
        kills = sorted(self.random.uniform(0.4, 0.9) * self.plan.phase_seconds for _ in range(self.plan.random_kills))
        actions: list[tuple[float, Callable[[], None]]] = [(self.plan.phase_seconds / 3, strike)]
        actions += [(at, lambda: self._random_kill(phase, cluster)) for at in kills]
        begun = time.monotonic()
        threads: list[threading.Thread] = []
        for message in phase.messages:
            while actions and message.due - first >= actions[0][0]:
                threads.append(threading.Thread(target=actions.pop(0)[1], daemon=True))
                threads[-1].start()
            wait = (message.due - first) - (time.monotonic() - begun)
            if wait > 0:
                time.sleep(wait)
            producer.produce(message.topic, key=message.key, value=message.value, headers=message.headers,
                             timestamp=int(_timestamp(simulator, message).timestamp() * 1000))
            producer.poll(0)
            cluster.supervise()
        for _, action in actions:
            threads.append(threading.Thread(target=action, daemon=True))
            threads[-1].start()
        _flush(producer)
        for thread in threads:
            thread.join()

    def _catch_up(self, phase: Phase, cluster: Cluster, receiver: Receiver, commands: set[str],
                  bootstrap: str) -> None:
        deadline = time.monotonic() + self.plan.catch_up_timeout
        while time.monotonic() < deadline:
            cluster.supervise()
            if commands <= receiver.command_ids() and _lag(bootstrap, SINK_GROUP, [topics.HISTORY, topics.DLQ]) == 0:
                phase.caught_up_seconds = time.monotonic() - phase.struck_at
                return
            time.sleep(0.5)
        phase.notes.append(f"NOT caught up within {self.plan.catch_up_timeout:g}s")

    def _settle(self, cluster: Cluster, bootstrap: str) -> None:
        """Until nothing moves: every group's lag zero twice in a row, a few seconds apart."""
        quiet = 0
        deadline = time.monotonic() + self.plan.catch_up_timeout
        while quiet < 2 and time.monotonic() < deadline:
            cluster.supervise()
            time.sleep(3)
            lags = (_lag(bootstrap, SINK_GROUP, [topics.HISTORY, topics.DLQ]),
                    _lag(bootstrap, "trackline-notifier", [topics.NOTIFICATIONS]))
            quiet = quiet + 1 if lags == (0, 0) else 0

    # -- report ------------------------------------------------------------------------------

    def _report(self, phases: list[Phase], expected_commands: Any, receiver: Receiver, bootstrap: str,
                cluster: Cluster) -> dict[str, Any]:
        arrivals = receiver.arrivals()
        by_key = Counter(key for _, key in arrivals)
        ids_by_key = {key: command_id for command_id, key in arrivals}
        received_ids = Counter(ids_by_key.values())  # after dropping repeats by key
        sent = topic_counts(bootstrap, topics.NOTIFICATIONS, "command_id")
        history = _query(self.dir, "SELECT record_id, count() AS n FROM history GROUP BY record_id")
        final = {row["record_id"] for row in _query(self.dir, "SELECT record_id FROM history FINAL")}
        raw_counts = {row["record_id"]: int(row["n"]) for row in history}
        dead_letters = int(_query(self.dir, "SELECT count() AS n FROM dead_letters")[0]["n"])
        unexpected = set(received_ids) - set(expected_commands)

        rows: list[dict[str, Any]] = []
        for phase in phases:
            keys = [k for k, c in ids_by_key.items() if c in phase.commands]
            rows.append({
                "fault": phase.fault, "events_in": len(phase.messages),
                "commands_expected": len(phase.commands),
                "commands_sent": sum(1 for c in phase.commands if sent[c]),
                "commands_sent_twice": sum(1 for c in phase.commands if sent[c] > 1),
                "delivered_twice_as_sent": sum(1 for k in keys if by_key[k] > 1),
                "delivered_twice_after_dedupe": sum(1 for c in phase.commands if received_ids[c] > 1),
                "commands_missing": len(phase.commands - set(received_ids)),
                "history_expected": len(phase.history),
                "history_present_final": len(phase.history & final),
                "history_counted_twice_without_final": sum(1 for r in phase.history if raw_counts.get(r, 0) > 1),
                "history_missing": len(phase.history - final),
                "caught_up_seconds": None if phase.caught_up_seconds is None else round(phase.caught_up_seconds, 1),
                "what_happened": "; ".join(phase.notes),
            })
        total: dict[str, Any] = {key: sum(row[key] for row in rows) for key in rows[0] if isinstance(rows[0][key], int)}
        total.update(fault="total", unexpected_commands=len(unexpected), dead_letters=dead_letters,
                     restarts_by_supervisor=dict(cluster.restarts),
                     history_rows_not_in_oracle=len(final - set().union(*(p.history for p in phases))))
        missing = {phase.fault: sorted(phase.commands - set(received_ids))[:5] for phase in phases}
        history_missing = {phase.fault: sorted(phase.history - final)[:5] for phase in phases}
        return {"phases": rows, "total": total, "examples": {
                    "commands_missing": {k: v for k, v in missing.items() if v},
                    "history_missing": {k: v for k, v in history_missing.items() if v},
                    "unexpected_commands": sorted(unexpected)[:5]},
                "ok": total["commands_missing"] == 0 and total["delivered_twice_after_dedupe"] == 0
                and not unexpected and total["history_missing"] == 0 and dead_letters == 0
                and all(p.caught_up_seconds is not None for p in phases)}


def _lag(bootstrap: str, group: str, names: list[str]) -> int:
    try:
        return committed_lag(bootstrap, group, names)
    except Exception:  # the broker unreachable for a moment (a dropped connection): not caught up
        return -1


def _flush(producer: Any) -> None:
    while producer.flush(30):  # the broker may be unreachable for a while: never drop the workload
        pass


def _query(directory: Path, sql: str) -> list[dict[str, Any]]:
    out = subprocess.run([sys.executable, "-m", "trackline", "query", "--clickhouse",
                          f"chdb://{directory / 'clickhouse'}", sql], capture_output=True, check=True, timeout=300)
    rows: list[dict[str, Any]] = orjson.loads(out.stdout)
    return rows


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}s"


COLUMNS = [("fault", "fault"), ("events_in", "events"), ("commands_expected", "cmds exp"),
           ("commands_sent", "sent"), ("delivered_twice_as_sent", "2x sent"),
           ("delivered_twice_after_dedupe", "2x dedup"), ("commands_missing", "missing"),
           ("history_expected", "hist exp"), ("history_present_final", "FINAL"),
           ("history_counted_twice_without_final", "2x raw"), ("history_missing", "hist miss"),
           ("caught_up_seconds", "caught up s")]


def format_report(report: dict[str, Any]) -> str:
    rows = [*report["phases"], report["total"]]
    first = max(len(str(row["fault"])) for row in rows)  # fault names are longer than the figures

    def line(cells: list[Any]) -> str:
        return f"{cells[0]:<{first}}  " + "  ".join(f"{'' if cell is None else cell:>11}" for cell in cells[1:])

    lines = [line([title for _, title in COLUMNS])]
    lines.extend(line([row.get(k) for k, _ in COLUMNS]) for row in rows)
    total = report["total"]
    lines.append(f"dead letters {total['dead_letters']}, commands not in the oracle {total['unexpected_commands']}, "
                 f"history rows not in the oracle {total['history_rows_not_in_oracle']}, "
                 f"restarts by the supervisor {total['restarts_by_supervisor']}")
    lines.append("A notifier killed between sending and recording sends again on restart with the same "
                 "Idempotency-Key: '2x sent' counts those repeats, '2x dedup' what is left after the "
                 "receiver drops them by key.")
    if not report["ok"]:
        lines.append(f"examples: {json.dumps(report['examples'])}")
    lines.append(f"result: {'OK' if report['ok'] else 'FAILED'} in {report.get('seconds')}s on {report['broker']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trackline chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="each fault once, a 5 s outage (what make test runs)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--dir", default="", help="where logs, ClickHouse and the receiver's log go")
    parser.add_argument("--json", default="", help="also write the report to this file")
    args = parser.parse_args(argv)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    directory = (Path(args.dir) if args.dir else Path("data") / "chaos" / stamp).resolve()
    report = ChaosRun(SHORT if args.short else LONG, directory, args.seed).run()
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
