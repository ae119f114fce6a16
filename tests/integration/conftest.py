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
        self.env = dict(os.environ)  # TRACKLINE_* settings for the processes started next
        self.extra_args: dict[str, list[str]] = {}  # more flags, by process name

    def start(self, *names: str) -> Pipeline:
        for name in names:
            command = name.split("-")[0]  # "worker-2": a second worker process
            port = self.web_port if name == "worker" else free_port()
            extra = (["--web-port", str(port)] if command == "worker" else []) + self.extra_args.get(name, [])
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "trackline", command, "--kafka", self.bootstrap,
                 "--data-dir", str(self.data_dir / name if command == "worker" else self.data_dir),
                 "--partitions", str(PARTITIONS),
                 "--log-level", "info", *extra],
                stdout=open(self.logs / f"{name}.log", "ab"), stderr=subprocess.STDOUT, env=self.env,
            )
        return self

    def lookup(self, order_id: str) -> tuple[int, dict]:
        """``GET /api/orders/{order_id}`` on the worker, as a support tool would call it."""
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/api/orders/{order_id}", timeout=10) as r:
                return r.status, orjson.loads(r.read())
        except urllib.error.HTTPError as error:
            return error.code, orjson.loads(error.read())

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

    def delivered(self) -> list[dict]:
        if not self.outbox.exists():
            return []
        return [orjson.loads(line) for line in self.outbox.read_bytes().splitlines() if line.strip()]

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None and process.returncode not in (0, -9, -15):
                    raise AssertionError(f"{name} died: {(self.logs / f'{name}.log').read_text()[-3000:]}")
            if condition():
                return
            time.sleep(0.5)
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
